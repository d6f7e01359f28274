//! The consumer contract every pipeline stage after a receiver implements, and the error
//! that travels back to the receiver (the backpressure path).

use crate::traces::Traces;
use async_trait::async_trait;
use std::sync::Arc;
use std::time::Duration;

/// Why a stage did not take a batch, and whether sending it again can help.
///
/// The OTLP receiver maps `Retryable` to gRPC `UNAVAILABLE` / HTTP 503 (HTTP 429 with
/// `Retry-After` when `retry_after` is set), `Permanent` to `INVALID_ARGUMENT` / HTTP 400,
/// and `PartiallyRejected` to a success response carrying OTLP partial success.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ConsumeError {
    /// The data is fine but cannot be taken now (queue full, memory limit, backend down).
    #[error("{message}")]
    Retryable {
        /// What went wrong.
        message: String,
        /// How long the sender should wait before retrying, when known (throttling).
        retry_after: Option<Duration>,
    },
    /// The data itself is refused; sending it again will fail again.
    #[error("{message}")]
    Permanent {
        /// What was wrong with the data.
        message: String,
    },
    /// Some spans were refused for good; the others were accepted.
    #[error("{rejected_spans} spans rejected: {message}")]
    PartiallyRejected {
        /// How many spans were not accepted.
        rejected_spans: u64,
        /// Why.
        message: String,
    },
}

impl ConsumeError {
    /// A retryable error without a retry-after hint.
    pub fn retryable(message: impl Into<String>) -> Self {
        ConsumeError::Retryable {
            message: message.into(),
            retry_after: None,
        }
    }

    /// A retryable error asking the sender to wait `after` (throttling).
    pub fn throttled(message: impl Into<String>, after: Duration) -> Self {
        ConsumeError::Retryable {
            message: message.into(),
            retry_after: Some(after),
        }
    }

    /// A permanent error: the data is refused for good.
    pub fn permanent(message: impl Into<String>) -> Self {
        ConsumeError::Permanent {
            message: message.into(),
        }
    }

    /// True when sending the same data again may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, ConsumeError::Retryable { .. })
    }

    /// The error message without the variant's decoration.
    pub fn message(&self) -> &str {
        match self {
            ConsumeError::Retryable { message, .. }
            | ConsumeError::Permanent { message }
            | ConsumeError::PartiallyRejected { message, .. } => message,
        }
    }
}

impl From<crate::traces::DecodeError> for ConsumeError {
    fn from(e: crate::traces::DecodeError) -> Self {
        ConsumeError::permanent(e.to_string())
    }
}

/// A pipeline stage that takes batches of spans: a processor, an exporter, or a fan-out.
///
/// `consume` returns once the stage has taken responsibility for the batch (stored it,
/// queued it, or passed it on and heard back); its result travels back to the receiver.
///
/// # Admission before decoding
///
/// [`admit`](Consumer::admit) is a cheap, synchronous "would you take data now?" that a
/// receiver asks **before** it reads or decodes a request body. When it answers `Err`,
/// the receiver refuses the request with that error (a retryable one becomes gRPC
/// `UNAVAILABLE` / HTTP 503) without allocating the body, so a flood of requests cannot
/// push memory up while the pipeline is refusing anyway. The contract:
///
/// - It must be cheap (an atomic load, a clock read): it runs once per request.
/// - It must not block or await, and it does not reserve anything: `Ok` is a hint, and
///   `consume` may still refuse the batch that follows.
/// - The default answers `Ok`. A stage that refuses by state (the `memory_limiter`
///   processor, a stage that is shut down) overrides it; a stage that passes batches to
///   a `next` consumer (the `batch` processor, [`FanOut`], any processor holding a
///   `next`) forwards it with `self.next.admit()`, so the receiver hears the answer of
///   the first stage that refuses.
#[async_trait]
pub trait Consumer: Send + Sync {
    /// Takes a batch.
    async fn consume(&self, traces: Traces) -> Result<(), ConsumeError>;

    /// Whether the stage (and those after it) would take data now; see the trait's
    /// documentation. Called by receivers before they read a request body.
    fn admit(&self) -> Result<(), ConsumeError> {
        Ok(())
    }
}

/// A shared handle on the next stage.
pub type ConsumerRef = Arc<dyn Consumer>;

/// Sends each batch to several consumers: a clone to every one but the last, which gets
/// the original. All are tried; the first error is returned (retryable wins over
/// permanent, so the sender retries when any consumer could take it later).
pub struct FanOut {
    consumers: Vec<ConsumerRef>,
}

impl FanOut {
    /// Builds a fan-out; with a single consumer, returns it unchanged.
    pub fn build(mut consumers: Vec<ConsumerRef>) -> ConsumerRef {
        if consumers.len() == 1 {
            return consumers.remove(0);
        }
        Arc::new(FanOut { consumers })
    }
}

#[async_trait]
impl Consumer for FanOut {
    /// Refuses when any consumer refuses (the first refusal is returned): `consume` would
    /// report that consumer's error to the sender anyway, and the sender retries the
    /// whole request.
    fn admit(&self) -> Result<(), ConsumeError> {
        self.consumers.iter().try_for_each(|c| c.admit())
    }

    async fn consume(&self, traces: Traces) -> Result<(), ConsumeError> {
        let Some((last, rest)) = self.consumers.split_last() else {
            return Ok(());
        };
        let mut sends = Vec::with_capacity(self.consumers.len());
        for consumer in rest {
            sends.push(consumer.consume(traces.clone()));
        }
        sends.push(last.consume(traces));
        let results = futures::future::join_all(sends).await;
        let mut first: Option<ConsumeError> = None;
        for err in results.into_iter().filter_map(Result::err) {
            first = match first {
                None => Some(err),
                Some(prev) if !prev.is_retryable() && err.is_retryable() => Some(err),
                Some(prev) => Some(prev),
            };
        }
        first.map_or(Ok(()), Err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};

    /// A consumer whose admission answer the test switches.
    struct Gate(AtomicBool);

    #[async_trait]
    impl Consumer for Gate {
        async fn consume(&self, _traces: Traces) -> Result<(), ConsumeError> {
            self.admit()
        }

        fn admit(&self) -> Result<(), ConsumeError> {
            if self.0.load(Ordering::SeqCst) {
                Ok(())
            } else {
                Err(ConsumeError::retryable("gate closed"))
            }
        }
    }

    struct Plain;

    #[async_trait]
    impl Consumer for Plain {
        async fn consume(&self, _traces: Traces) -> Result<(), ConsumeError> {
            Ok(())
        }
    }

    #[test]
    fn default_admits() {
        assert!(Plain.admit().is_ok());
    }

    #[test]
    fn fan_out_refuses_when_any_consumer_refuses() {
        let gate = Arc::new(Gate(AtomicBool::new(true)));
        let fan = FanOut::build(vec![Arc::new(Plain), gate.clone()]);
        assert!(fan.admit().is_ok());
        gate.0.store(false, Ordering::SeqCst);
        let e = fan.admit().unwrap_err();
        assert!(e.is_retryable());
        assert_eq!(e.message(), "gate closed");
        // A single consumer is returned as is, so its own answer is the fan-out's.
        let single = FanOut::build(vec![gate.clone() as ConsumerRef]);
        assert!(single.admit().is_err());
    }
}
