//! Demo: a frontend client and a backend server, both instrumented with the
//! OpenTelemetry Rust SDK and exporting OTLP/gRPC to Teletrace. The client starts each
//! trace and calls the server over HTTP with the W3C `traceparent` header, so one trace
//! spans both services.
//!
//! ```text
//! cargo run --release                       # Teletrace all-in-one, in one terminal
//! cargo run -p demo -- all                  # server and client, in another
//! open http://localhost:8080                # or: curl localhost:8080/v1/trace/<id>
//! ```

mod propagation;
mod telemetry;

use anyhow::{Context as _, Result};
use clap::{Parser, Subcommand};
use opentelemetry::trace::{Span, SpanKind, Status, TraceContextExt, Tracer};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::trace::SdkTracerProvider;
use rand::Rng;
use std::time::Duration;

#[derive(Parser)]
#[command(about = "A client and a server sending one trace across both to Teletrace")]
struct Args {
    /// OTLP/gRPC endpoint of the collector.
    #[arg(long, default_value = "http://localhost:4317", global = true)]
    otlp: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the backend server (service `demo-backend`).
    Server {
        /// Where to listen.
        #[arg(long, default_value = "127.0.0.1:8081")]
        listen: String,
    },
    /// Run the frontend client (service `demo-frontend`) against a running server.
    Client {
        /// Base URL of the server.
        #[arg(long, default_value = "http://127.0.0.1:8081")]
        server: String,
        /// How many checkouts to run.
        #[arg(long, default_value_t = 5)]
        requests: usize,
    },
    /// Run both in one process (each with its own service name and exporter).
    All {
        /// How many checkouts to run.
        #[arg(long, default_value_t = 5)]
        requests: usize,
    },
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    match args.command {
        Command::Server { listen } => {
            let provider = telemetry::provider(&args.otlp, "demo-backend")?;
            let listener = tokio::net::TcpListener::bind(&listen)
                .await
                .with_context(|| format!("binding {listen}"))?;
            println!(
                "demo-backend listening on http://{}",
                listener.local_addr()?
            );
            let served = server::serve(listener, provider.clone());
            tokio::select! {
                r = served => r?,
                _ = tokio::signal::ctrl_c() => {}
            }
            provider.shutdown()?;
        }
        Command::Client { server, requests } => {
            let provider = telemetry::provider(&args.otlp, "demo-frontend")?;
            run_client(&provider, &server, requests).await?;
            provider.shutdown()?;
        }
        Command::All { requests } => {
            let backend = telemetry::provider(&args.otlp, "demo-backend")?;
            let frontend = telemetry::provider(&args.otlp, "demo-frontend")?;
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
            let url = format!("http://{}", listener.local_addr()?);
            let server = tokio::spawn(server::serve(listener, backend.clone()));
            run_client(&frontend, &url, requests).await?;
            server.abort();
            frontend.shutdown()?;
            backend.shutdown()?;
        }
    }
    Ok(())
}

async fn run_client(provider: &SdkTracerProvider, server: &str, requests: usize) -> Result<()> {
    use opentelemetry::trace::TracerProvider as _;
    let tracer = provider.tracer("demo-frontend");
    let http = reqwest::Client::new();
    for i in 0..requests {
        let root = tracer
            .span_builder("checkout")
            .with_kind(SpanKind::Internal)
            .with_attributes([KeyValue::new("cart.items", (i % 4 + 1) as i64)])
            .start(&tracer);
        let cx = Context::current_with_span(root);
        let trace_id = cx.span().span_context().trace_id();
        let mut call = tracer
            .span_builder("POST /checkout")
            .with_kind(SpanKind::Client)
            .with_attributes([
                KeyValue::new("http.request.method", "POST"),
                KeyValue::new("url.full", format!("{server}/checkout")),
            ])
            .start_with_context(&tracer, &cx);
        let call_cx = cx.with_remote_span_context(call.span_context().clone());
        let mut request = http.post(format!("{server}/checkout")).build()?;
        propagation::inject(&call_cx, request.headers_mut());
        let response =
            opentelemetry::trace::FutureExt::with_context(http.execute(request), call_cx.clone())
                .await;
        match response {
            Ok(r) => {
                let status = r.status().as_u16();
                call.set_attribute(KeyValue::new("http.response.status_code", status as i64));
                if status >= 500 {
                    call.set_status(Status::error(format!("HTTP {status}")));
                }
            }
            Err(e) => call.set_status(Status::error(e.to_string())),
        }
        call.end();
        cx.span().end();
        println!("checkout {i}: trace {trace_id}");
    }
    Ok(())
}

mod server {
    use super::*;
    use axum::extract::State;
    use axum::http::{HeaderMap, StatusCode};
    use opentelemetry::trace::TracerProvider as _;

    /// Serves `POST /checkout` until the task is dropped.
    pub async fn serve(
        listener: tokio::net::TcpListener,
        provider: SdkTracerProvider,
    ) -> Result<()> {
        let app = axum::Router::new()
            .route("/checkout", axum::routing::post(checkout))
            .with_state(provider);
        axum::serve(listener, app).await?;
        Ok(())
    }

    async fn checkout(State(provider): State<SdkTracerProvider>, headers: HeaderMap) -> StatusCode {
        let tracer = provider.tracer("demo-backend");
        let parent = propagation::extract(&headers);
        let span = tracer
            .span_builder("POST /checkout")
            .with_kind(SpanKind::Server)
            .with_attributes([
                KeyValue::new("http.request.method", "POST"),
                KeyValue::new("http.route", "/checkout"),
            ])
            .start_with_context(&tracer, &parent);
        let cx = parent.with_span(span);
        let (fail, db_ms, pay_ms) = {
            let mut rng = rand::rng();
            (
                rng.random_bool(0.2),
                rng.random_range(2..15),
                rng.random_range(5..30),
            )
        };
        for (name, ms, kind) in [
            ("SELECT cart", db_ms, SpanKind::Client),
            ("charge card", pay_ms, SpanKind::Internal),
        ] {
            let mut child = tracer
                .span_builder(name)
                .with_kind(kind)
                .with_attributes([KeyValue::new("db.system.name", "sqlite")])
                .start_with_context(&tracer, &cx);
            tokio::time::sleep(Duration::from_millis(ms)).await;
            if fail && name == "charge card" {
                child.add_event(
                    "card declined",
                    vec![KeyValue::new("reason", "insufficient funds")],
                );
                child.set_status(Status::error("card declined"));
            }
            child.end();
        }
        let code = if fail {
            StatusCode::PAYMENT_REQUIRED
        } else {
            StatusCode::OK
        };
        let span = cx.span();
        span.set_attribute(KeyValue::new(
            "http.response.status_code",
            code.as_u16() as i64,
        ));
        span.end();
        code
    }
}
