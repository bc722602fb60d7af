//! The HTTP side every server shares: Prometheus's web configuration file (TLS, mutual TLS, basic
//! authentication; [`config`]), serving a router with it ([`serve()`]), and the HTTP client
//! configuration file the querier's remote-read client takes ([`client`]).

pub mod client;
pub mod config;
mod serve;

pub use serve::serve;

use anyhow::bail;
use yaml_rust2::yaml::Hash;
use yaml_rust2::{Yaml, YamlLoader};

/// The top-level mapping of a YAML file (`None` when the file is empty).
fn yaml_root(text: &str) -> anyhow::Result<Option<Hash>> {
    let docs = YamlLoader::load_from_str(text).map_err(|e| {
        let m = e.marker();
        anyhow::anyhow!("line {}, column {}: {}", m.line(), m.col() + 1, e.info())
    })?;
    match docs.into_iter().next() {
        None | Some(Yaml::Null) => Ok(None),
        Some(Yaml::Hash(h)) => Ok(Some(h)),
        Some(_) => bail!("the file must be a mapping of settings"),
    }
}

/// A scalar as text (`what` names it in the error).
fn text_of(v: &Yaml, what: &str) -> anyhow::Result<String> {
    match v {
        Yaml::String(s) => Ok(s.clone()),
        Yaml::Integer(i) => Ok(i.to_string()),
        _ => bail!("{what} must be a string"),
    }
}

/// The entries of a mapping (`what` names it in the error).
fn fields<'y>(
    v: &'y Yaml,
    what: &str,
) -> anyhow::Result<impl Iterator<Item = (&'y Yaml, &'y Yaml)>> {
    match v {
        Yaml::Hash(h) => Ok(h.iter()),
        Yaml::Null => bail!("{what} is empty"),
        _ => bail!("{what} must be a mapping"),
    }
}

#[cfg(test)]
mod tests;
