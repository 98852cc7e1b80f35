//! Configuration loading shared by the binaries: defaults, then a TOML file (if any), then
//! environment overrides (`<PREFIX>SECTION__KEY=value`). Errors name the offending key and
//! where its value came from. Checks of values that parse but make no sense stay with each
//! binary's configuration type.

use std::path::Path;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// A configuration that cannot be loaded; the message names each offending key and its
/// source, joined by `; `.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// Loads `T`: its `Default`, then the TOML `file` (which must exist when given), then the
/// environment variables starting with `env_prefix` (e.g. `LIKENESS_MATCHER__`), with `__`
/// separating sections (`LIKENESS_MATCHER__SERVER__GRPC_ADDR`).
pub fn load<T>(file: Option<&Path>, env_prefix: &str) -> Result<T, ConfigError>
where
    T: Serialize + DeserializeOwned + Default,
{
    let mut fig = Figment::from(Serialized::defaults(T::default()));
    if let Some(f) = file {
        if !f.is_file() {
            return Err(ConfigError(format!(
                "config file {} does not exist",
                f.display()
            )));
        }
        fig = fig.merge(Toml::file(f));
    }
    fig = fig.merge(Env::prefixed(env_prefix).split("__"));
    fig.extract().map_err(|e| {
        let msgs: Vec<String> = e
            .into_iter()
            .map(|err| {
                let key = if err.path.is_empty() {
                    String::from("(root)")
                } else {
                    err.path.join(".")
                };
                let src = err
                    .metadata
                    .as_ref()
                    .map(|m| m.name.to_string())
                    .unwrap_or_default();
                format!("{key}: {} [{src}]", err.kind)
            })
            .collect();
        ConfigError(msgs.join("; "))
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, PartialEq, Default, Serialize, Deserialize)]
    #[serde(deny_unknown_fields, default)]
    struct Conf {
        server: Server,
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields, default)]
    struct Server {
        port: u16,
        name: String,
    }

    impl Default for Server {
        fn default() -> Self {
            Self {
                port: 80,
                name: "x".into(),
            }
        }
    }

    // Each test has its own prefix; figment's Jail sets the environment under a lock.
    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail takes a closure returning its Error
    fn defaults_then_file_then_environment() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("c.toml");
        std::fs::write(&f, "[server]\nport = 81\nname = \"file\"\n").unwrap();
        assert_eq!(
            load::<Conf>(None, "LIKENESS_COMMON_TEST_A__").unwrap(),
            Conf::default()
        );
        let c: Conf = load(Some(&f), "LIKENESS_COMMON_TEST_A__").unwrap();
        assert_eq!((c.server.port, c.server.name.as_str()), (81, "file"));
        figment::Jail::expect_with(|jail| {
            jail.set_env("LIKENESS_COMMON_TEST_B__SERVER__PORT", "82");
            let c: Conf = load(Some(&f), "LIKENESS_COMMON_TEST_B__").unwrap();
            assert_eq!((c.server.port, c.server.name.as_str()), (82, "file"));
            Ok(())
        });
    }

    #[test]
    fn unknown_and_wrong_keys_are_named_with_their_source() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("c.toml");
        std::fs::write(&f, "[server]\nprot = 81\n").unwrap();
        let e = load::<Conf>(Some(&f), "LIKENESS_COMMON_TEST_C__")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("server.prot") && e.contains("[TOML file]"),
            "{e}"
        );

        std::fs::write(&f, "[server]\nport = \"many\"\n").unwrap();
        let e = load::<Conf>(Some(&f), "LIKENESS_COMMON_TEST_C__")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("server.port") && e.contains("[TOML file]"),
            "{e}"
        );
    }

    #[test]
    fn a_missing_file_is_named() {
        let e = load::<Conf>(
            Some(Path::new("/nonexistent/likeness.toml")),
            "LIKENESS_COMMON_TEST_D__",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("/nonexistent/likeness.toml"), "{e}");
    }
}
