//! The read side's SQL: tag names, filters, access paths, paging, and loading spans.

pub(crate) mod filter;
pub(crate) mod load;
pub(crate) mod plan;
pub(crate) mod sql;
pub(crate) mod tag;
pub(crate) mod token;

mod aggregate;
mod dependencies;
mod metrics;
mod search;
pub(crate) mod services;
mod stored_attributes;
pub(crate) mod trace_json;
mod traces;

pub(crate) use aggregate::{tag_statistics, tag_values};
pub(crate) use dependencies::dependencies;
pub(crate) use metrics::service_metrics;
pub(crate) use search::search;
pub(crate) use traces::find_trace_ids;
