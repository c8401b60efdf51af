//! `SIGHUP`: re-read the configuration file and hand its secrets to the
//! running pipeline. A file that does not load (bad TOML, a missing
//! `${file:...}`, an invalid PostgreSQL URL) is refused as a whole: the
//! running configuration stays. Other settings than secrets take effect at
//! the next restart only.

use std::path::Path;

use crate::config::LiveSecrets;
use crate::settings::Config;
use crate::sources::postgres::PgSource;

/// What a reload did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reloaded {
    /// The keys of the secrets whose value changed (never a value).
    pub changed: Vec<String>,
    /// Whether settings other than secrets differ from the running ones
    /// (they are not applied until a restart).
    pub other_settings_changed: bool,
}

/// Why a reload was refused; the running configuration stays.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The file does not load or validate.
    #[error("{0}")]
    Config(#[from] crate::config::ConfigError),
    /// A new PostgreSQL URL that would not connect (checked without network).
    #[error("{file}: postgres.{name}.url: {detail}")]
    Postgres {
        /// The configuration file.
        file: String,
        /// The database's config name.
        name: String,
        /// What is wrong (the URL's password redacted).
        detail: String,
    },
}

/// Loads `path`, checks it, and applies its secrets to `secrets`. `running`
/// is the configuration the pipeline started with.
pub fn reload(
    path: &Path,
    running: &Config,
    secrets: &LiveSecrets,
) -> Result<Reloaded, ReloadError> {
    let fresh = Config::load(path)?;
    check(&path.display().to_string(), &fresh)?;
    Ok(apply(running, &fresh, secrets))
}

/// The checks `PgSource::new` makes at start (URL syntax, TLS settings).
fn check(file: &str, fresh: &Config) -> Result<(), ReloadError> {
    for (name, db) in &fresh.postgres {
        PgSource::new(name, db.clone()).map_err(|e| ReloadError::Postgres {
            file: file.to_string(),
            name: name.clone(),
            detail: e.to_string(),
        })?;
    }
    Ok(())
}

/// Applies `fresh`'s secrets; compares the rest with `running`.
fn apply(running: &Config, fresh: &Config, secrets: &LiveSecrets) -> Reloaded {
    // Secrets print as `***`, so the Debug texts differ only in other settings.
    let other_settings_changed = format!("{running:?}") != format!("{fresh:?}");
    Reloaded {
        changed: secrets.apply(&fresh.reloadable_secrets()),
        other_settings_changed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::LiveSecret;

    fn write(dir: &Path, token_file: &Path, page_size: u32) -> std::path::PathBuf {
        let path = dir.join("govflow.toml");
        let text = format!(
            "[bigcommerce]\nstore_hash = 's'\naccess_token = '${{file:{}}}'\npage_size = {page_size}\n\
             [postgres.wise]\nurl = 'postgres://u:pw@127.0.0.1/db'\n\
             [[postgres.wise.tables]]\nname = 'point_transaction'\nkey = ['id']\n",
            token_file.display()
        );
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn a_reload_applies_new_secrets_and_refuses_a_bad_file() {
        let dir = tempfile::tempdir().unwrap();
        let token_file = dir.path().join("bc-token");
        std::fs::write(&token_file, "tok-ONE\n").unwrap();
        let path = write(dir.path(), &token_file, 250);
        let running = Config::load(&path).unwrap();
        let secrets = LiveSecrets::default();
        let token = LiveSecret::new(running.bigcommerce.as_ref().unwrap().access_token.clone());
        secrets.register("bigcommerce.access_token", &token);

        let same = reload(&path, &running, &secrets).unwrap();
        assert_eq!(
            same,
            Reloaded {
                changed: vec![],
                other_settings_changed: false
            }
        );
        std::fs::write(&token_file, "tok-TWO\n").unwrap();
        let two = reload(&path, &running, &secrets).unwrap();
        assert_eq!(two.changed, ["bigcommerce.access_token"]);
        assert_eq!(token.get().expose(), "tok-TWO");

        // A missing secret file: refused, the running token stays.
        std::fs::remove_file(&token_file).unwrap();
        let e = reload(&path, &running, &secrets).unwrap_err();
        assert!(
            e.to_string()
                .contains("bigcommerce.access_token: cannot read the file"),
            "{e}"
        );
        assert_eq!(token.get().expose(), "tok-TWO");

        // A PostgreSQL URL the source would refuse: refused as a whole.
        std::fs::write(&token_file, "tok-THREE").unwrap();
        let text = std::fs::read_to_string(&path)
            .unwrap()
            .replace("127.0.0.1/db'", "127.0.0.1/db?sslmode=bogus'");
        std::fs::write(&path, text).unwrap();
        let e = reload(&path, &running, &secrets).unwrap_err();
        assert!(e.to_string().contains("postgres.wise.url"), "{e}");
        assert!(!e.to_string().contains(":pw@"), "{e}");
        assert_eq!(token.get().expose(), "tok-TWO");

        // Other settings are reported, not applied.
        let path = write(dir.path(), &token_file, 100);
        let three = reload(&path, &running, &secrets).unwrap();
        assert_eq!(three.changed, ["bigcommerce.access_token"]);
        assert!(three.other_settings_changed);
        assert_eq!(token.get().expose(), "tok-THREE");
    }
}
