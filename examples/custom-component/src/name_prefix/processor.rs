//! The `name_prefix` processor itself.

use async_trait::async_trait;
use teletrace_core::{ConsumeError, Consumer, ConsumerRef, Lifecycle, Processor, Traces};

/// Prefixes span names, then passes the batch on.
pub struct NamePrefix {
    prefix: String,
    next: ConsumerRef,
}

impl NamePrefix {
    /// A processor adding `prefix` and feeding `next`.
    pub fn new(prefix: String, next: ConsumerRef) -> Self {
        NamePrefix { prefix, next }
    }
}

#[async_trait]
impl Consumer for NamePrefix {
    async fn consume(&self, mut traces: Traces) -> Result<(), ConsumeError> {
        traces.retain_spans(|_, _, span| {
            span.name.insert_str(0, &self.prefix);
            true
        })?;
        self.next.consume(traces).await
    }
}

impl Lifecycle for NamePrefix {}
impl Processor for NamePrefix {}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use teletrace_core::proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};

    #[derive(Default)]
    struct Keep(Mutex<Vec<String>>);

    #[async_trait]
    impl Consumer for Keep {
        async fn consume(&self, mut traces: Traces) -> Result<(), ConsumeError> {
            let mut names = self.0.lock().unwrap();
            traces.for_each_span(|_, _, s| names.push(s.name.clone()))?;
            Ok(())
        }
    }

    #[tokio::test]
    async fn prefixes_every_name() {
        let keep = Arc::new(Keep::default());
        let p = NamePrefix::new("x.".into(), keep.clone());
        let spans = ["a", "b"]
            .map(|n| Span {
                name: n.into(),
                trace_id: vec![1; 16],
                span_id: vec![1; 8],
                ..Default::default()
            })
            .to_vec();
        let batch = Traces::new(vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }]);
        p.consume(batch).await.unwrap();
        assert_eq!(*keep.0.lock().unwrap(), ["x.a", "x.b"]);
    }
}
