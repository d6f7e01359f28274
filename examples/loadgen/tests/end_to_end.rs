//! Drive loadgen against in-process sinks and check what arrived.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;

use clap::Parser;
use common::{grpc_sink, http_sink, Mode, Sink};
use loadgen::args::Args;
use loadgen::stats::Summary;

async fn run(addr: SocketAddr, extra: &[&str]) -> Summary {
    let endpoint = format!("http://{addr}");
    let mut argv = vec![
        "loadgen",
        "--endpoint",
        &endpoint,
        "--quiet",
        "--workers",
        "2",
        "--in-flight",
        "3",
    ];
    argv.extend_from_slice(extra);
    let cfg = Args::parse_from(argv).into_config().expect("valid args");
    loadgen::run::preflight(&cfg).await.expect("sink reachable");
    loadgen::run::run(cfg).await.expect("run")
}

fn check_exact(summary: &Summary, sink: &Sink, spans: u64, requests: u64) {
    assert_eq!(
        sink.spans.load(Relaxed),
        spans,
        "spans received by the sink"
    );
    assert_eq!(
        sink.requests.load(Relaxed),
        requests,
        "requests received by the sink"
    );
    assert_eq!(sink.bad_ids.load(Relaxed), 0);
    assert_eq!(summary.spans_sent, spans);
    assert_eq!(summary.spans_accepted, spans);
    assert_eq!(summary.requests_sent, requests);
    assert_eq!(summary.requests_ok, requests);
    assert_eq!(summary.requests_failed, 0, "errors: {:?}", summary.errors);
    assert_eq!(summary.latency.count, requests);
    assert!(summary.errors.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_hyper_exact_span_count() {
    let sink = Sink::new(Mode::Accept, false);
    let addr = grpc_sink(sink.clone()).await;
    // 1050 spans = 10 full requests + one of 50.
    let s = run(
        addr,
        &[
            "--spans",
            "1050",
            "--spans-per-request",
            "100",
            "--distinct-requests",
            "4",
        ],
    )
    .await;
    check_exact(&s, &sink, 1050, 11);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_hyper_gzip_unique_ids() {
    let sink = Sink::new(Mode::Accept, true);
    let addr = grpc_sink(sink.clone()).await;
    let s = run(
        addr,
        &[
            "--spans",
            "2000",
            "--spans-per-request",
            "50",
            "--distinct-requests",
            "2",
            "--compression",
            "gzip",
            "--unique-ids",
        ],
    )
    .await;
    check_exact(&s, &sink, 2000, 40);
    assert_eq!(
        sink.duplicate_ids.load(Relaxed),
        0,
        "IDs must not repeat with --unique-ids"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_ids_repeat_without_unique_ids() {
    let sink = Sink::new(Mode::Accept, true);
    let addr = grpc_sink(sink.clone()).await;
    let s = run(
        addr,
        &[
            "--spans",
            "400",
            "--spans-per-request",
            "100",
            "--distinct-requests",
            "2",
        ],
    )
    .await;
    check_exact(&s, &sink, 400, 4);
    assert_eq!(
        sink.duplicate_ids.load(Relaxed),
        200,
        "2 distinct requests cycled twice"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_tonic_gzip() {
    let sink = Sink::new(Mode::Accept, true);
    let addr = grpc_sink(sink.clone()).await;
    let s = run(
        addr,
        &[
            "--grpc-client",
            "tonic",
            "--compression",
            "gzip",
            "--spans",
            "777",
            "--spans-per-request",
            "100",
            "--unique-ids",
        ],
    )
    .await;
    check_exact(&s, &sink, 777, 8);
    assert_eq!(sink.duplicate_ids.load(Relaxed), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_proto() {
    let sink = Sink::new(Mode::Accept, false);
    let addr = http_sink(sink.clone()).await;
    let s = run(
        addr,
        &[
            "--protocol",
            "http",
            "--spans",
            "1000",
            "--spans-per-request",
            "100",
        ],
    )
    .await;
    check_exact(&s, &sink, 1000, 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_json_gzip_unique_ids() {
    let sink = Sink::new(Mode::Accept, true);
    let addr = http_sink(sink.clone()).await;
    let s = run(
        addr,
        &[
            "--protocol",
            "http",
            "--encoding",
            "json",
            "--compression",
            "gzip",
            "--unique-ids",
            "--spans",
            "1234",
            "--spans-per-request",
            "100",
            "--distinct-requests",
            "3",
            "--attributes",
            "25",
        ],
    )
    .await;
    check_exact(&s, &sink, 1234, 13);
    assert_eq!(sink.duplicate_ids.load(Relaxed), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partial_success_is_counted() {
    for (proto, sink_fn) in [("grpc", true), ("http", false)] {
        let sink = Sink::new(Mode::Reject(3), false);
        let addr = if sink_fn {
            grpc_sink(sink.clone()).await
        } else {
            http_sink(sink.clone()).await
        };
        let s = run(
            addr,
            &[
                "--protocol",
                proto,
                "--spans",
                "500",
                "--spans-per-request",
                "100",
            ],
        )
        .await;
        assert_eq!(s.requests_ok, 5, "{proto}");
        assert_eq!(s.spans_rejected, 15, "{proto}");
        assert_eq!(s.spans_accepted, 485, "{proto}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_are_counted_by_status() {
    let sink = Sink::new(Mode::Fail, false);
    let addr = grpc_sink(sink.clone()).await;
    let s = run(addr, &["--spans", "300", "--spans-per-request", "100"]).await;
    assert_eq!(s.requests_failed, 3);
    assert_eq!(s.responses, 3);
    assert_eq!(s.spans_accepted, 0);
    assert_eq!(s.errors["UNAVAILABLE"].count, 3);
    assert_eq!(
        s.errors["UNAVAILABLE"].example,
        "sink is failing on purpose"
    );

    let s = run(
        addr,
        &[
            "--spans",
            "300",
            "--spans-per-request",
            "100",
            "--grpc-client",
            "tonic",
        ],
    )
    .await;
    assert_eq!(s.errors["UNAVAILABLE"].count, 3);

    let sink = Sink::new(Mode::Fail, false);
    let addr = http_sink(sink.clone()).await;
    let s = run(
        addr,
        &[
            "--protocol",
            "http",
            "--spans",
            "200",
            "--spans-per-request",
            "100",
        ],
    )
    .await;
    assert_eq!(s.errors["HTTP 503"].count, 2);
    assert_eq!(s.errors["HTTP 503"].example, "sink is failing on purpose");
}

/// The schedule is a floor, never a race: 50 requests at 100 requests/s cannot finish
/// before the 50th one's slot (0.49 s after the start), however fast the machine. A slow
/// machine can only make the run longer, so nothing here depends on how busy it is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_is_respected() {
    let sink = Sink::new(Mode::Accept, false);
    let addr = grpc_sink(sink.clone()).await;
    // 5000 spans/s at 50 spans/request = one request every 10 ms; 2,500 spans = 50 requests.
    let s = run(
        addr,
        &[
            "--rate",
            "5000",
            "--spans-per-request",
            "50",
            "--spans",
            "2500",
        ],
    )
    .await;
    assert_eq!(s.requests_sent, 50);
    assert_eq!(s.requests_ok, 50);
    assert_eq!(sink.spans.load(Relaxed), 2500);
    assert!(
        s.elapsed_secs >= 0.49,
        "50 requests 10 ms apart finished in {} s: the rate was exceeded",
        s.elapsed_secs
    );
    // Every scheduled request was sent, so none can be counted as missed.
    assert_eq!(s.missed_requests, 0);
    assert_eq!(s.target_rate, Some(5000.0));
}

/// `--duration` stops the run: no request starts after the deadline, so the run ends
/// once those in flight are answered. The time limit here only guards against a hang.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duration_limit_stops() {
    let sink = Sink::new(Mode::Accept, false);
    let addr = http_sink(sink.clone()).await;
    let s = tokio::time::timeout(
        std::time::Duration::from_secs(60),
        run(addr, &["--protocol", "http", "--duration", "500ms"]),
    )
    .await
    .expect("the run did not stop within a minute of its 500 ms deadline");
    assert!(s.requests_sent > 0);
    assert!(s.elapsed_secs >= 0.5, "stopped early: {} s", s.elapsed_secs);
    assert_eq!(sink.spans.load(Relaxed), s.spans_accepted);
    assert_eq!(s.requests_ok, s.requests_sent);
}

#[tokio::test]
async fn unreachable_endpoint_fails_preflight() {
    // Bind and drop to get a port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let endpoint = format!("http://127.0.0.1:{port}");
    let cfg = Args::parse_from(["loadgen", "--endpoint", &endpoint])
        .into_config()
        .unwrap();
    assert!(loadgen::run::preflight(&cfg).await.is_err());
}
