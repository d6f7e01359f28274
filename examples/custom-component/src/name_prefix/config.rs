//! Config of the `name_prefix` processor.

use serde::Deserialize;
use teletrace_core::ComponentConfig;

/// `processors::name_prefix`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NamePrefixConfig {
    /// Text put in front of every span name. Default `custom.`; must not be empty.
    pub prefix: String,
}

impl Default for NamePrefixConfig {
    fn default() -> Self {
        NamePrefixConfig {
            prefix: "custom.".into(),
        }
    }
}

impl ComponentConfig for NamePrefixConfig {
    fn validate(&self) -> Result<(), (String, String)> {
        if self.prefix.is_empty() {
            return Err(("prefix".into(), "must not be empty".into()));
        }
        Ok(())
    }
}
