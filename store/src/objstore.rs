//! `--objstore URL` parsing: the one place a URL becomes an [`ObjectStore`].
//!
//! * `file:///abs/dir`: a local folder (created if missing);
//! * `memory://`: an in-process store, empty at start (tests, demos);
//! * `s3://bucket/prefix`: S3 or any S3-compatible server, configured by the standard `AWS_*`
//!   variables (`AWS_ENDPOINT`, `AWS_ALLOW_HTTP=true`, `AWS_REGION`, credentials...);
//! * `gs://bucket/prefix` (`GOOGLE_*` variables), `az://container/prefix` (`AZURE_*` variables).
//!
//! The returned store is rooted at the prefix, so block paths are relative to it.

use std::sync::Arc;

use object_store::ObjectStore;
use object_store::aws::AmazonS3Builder;
use object_store::azure::MicrosoftAzureBuilder;
use object_store::gcp::GoogleCloudStorageBuilder;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::prefix::PrefixStore;

use crate::error::{Error, Result};

/// Opens the object store named by `url`, rooted at the URL's path, configured from the process
/// environment.
pub fn open(url: &str) -> Result<Arc<dyn ObjectStore>> {
    open_with_env(url, std::env::vars())
}

/// [`open`] with the `AWS_*`, `GOOGLE_*` and `AZURE_*` settings taken from `env` instead of the
/// process environment.
pub fn open_with_env(
    url: &str,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Arc<dyn ObjectStore>> {
    let env: Vec<(String, String)> = env.into_iter().collect();
    let settings = |prefix: &str| {
        env.iter()
            .filter(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
            .collect::<Vec<_>>()
    };
    let bad = |reason: String| Error::ObjectStoreUrl {
        url: url.to_string(),
        reason,
    };
    let parsed = url::Url::parse(url).map_err(|e| bad(e.to_string()))?;
    let prefix = Path::from_url_path(parsed.path()).map_err(|e| bad(e.to_string()))?;
    let cloud = |built: std::result::Result<Arc<dyn ObjectStore>, object_store::Error>| {
        let store = built.map_err(|e| bad(e.to_string()))?;
        Ok(if prefix.as_ref().is_empty() {
            store
        } else {
            Arc::new(PrefixStore::new(store, prefix.clone())) as _
        })
    };
    match parsed.scheme() {
        "file" => {
            let dir = parsed
                .to_file_path()
                .map_err(|()| bad("a file URL needs an absolute path: file:///abs/dir".into()))?;
            std::fs::create_dir_all(&dir)
                .map_err(|e| bad(format!("create {}: {e}", dir.display())))?;
            let fs = LocalFileSystem::new_with_prefix(&dir).map_err(|e| bad(e.to_string()))?;
            Ok(Arc::new(fs))
        }
        "memory" => Ok(Arc::new(InMemory::new())),
        "s3" | "s3a" => {
            let builder = settings("AWS_")
                .into_iter()
                .fold(AmazonS3Builder::new(), |b, (k, v)| match k.parse() {
                    Ok(key) => b.with_config(key, v),
                    Err(_) => b,
                });
            cloud(builder.with_url(url).build().map(|s| Arc::new(s) as _))
        }
        "gs" => {
            let builder = settings("GOOGLE_").into_iter().fold(
                GoogleCloudStorageBuilder::new(),
                |b, (k, v)| match k.parse() {
                    Ok(key) => b.with_config(key, v),
                    Err(_) => b,
                },
            );
            cloud(builder.with_url(url).build().map(|s| Arc::new(s) as _))
        }
        "az" | "azure" | "abfs" | "abfss" => {
            let builder =
                settings("AZURE_")
                    .into_iter()
                    .fold(MicrosoftAzureBuilder::new(), |b, (k, v)| match k.parse() {
                        Ok(key) => b.with_config(key, v),
                        Err(_) => b,
                    });
            cloud(builder.with_url(url).build().map(|s| Arc::new(s) as _))
        }
        other => Err(bad(format!(
            "unsupported scheme {other:?}; use file:///abs/dir, memory://, s3://bucket/prefix, gs://bucket/prefix or az://container/prefix"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::{ObjectStoreExt, PutPayload};

    #[tokio::test]
    async fn file_urls_are_rooted_at_their_path() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("bucket");
        let store = open(&format!("file://{}", root.display())).unwrap();
        store
            .put(&Path::from("a/b"), PutPayload::from_static(b"x"))
            .await
            .unwrap();
        assert!(root.join("a/b").exists());
    }

    #[test]
    fn bad_urls_say_why() {
        for (url, want) in [
            ("ftp://x/y", "unsupported scheme"),
            ("not a url", "relative URL"),
            ("file://relative/dir", "absolute path"),
        ] {
            let err = open(url).err().map(|e| e.to_string()).unwrap_or_default();
            assert!(err.contains(want), "{url}: {err}");
        }
        assert!(open("memory://").is_ok());
        assert!(
            open("s3://bucket/prefix").is_ok(),
            "credentials are only needed on first request"
        );
    }
}
