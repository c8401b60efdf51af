//! `${VAR}` and `${file:PATH}` in the strings of a configuration file;
//! `$$` is a literal `$`.

/// Replaces `${VAR}` in every string of the table; `$$` is a literal `$`.
pub(crate) fn expand_table(
    table: &mut toml::Table,
    prefix: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(), (String, String)> {
    for (name, value) in table.iter_mut() {
        let key = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}.{name}")
        };
        expand_value(value, &key, env)?;
    }
    Ok(())
}

fn expand_value(
    value: &mut toml::Value,
    key: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(), (String, String)> {
    match value {
        toml::Value::String(s) => *s = expand_str(s, env).map_err(|p| (key.to_string(), p))?,
        toml::Value::Table(t) => expand_table(t, key, env)?,
        toml::Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                expand_value(item, &format!("{key}[{i}]"), env)?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// What [`Config::load`](crate::settings::Config::load) reads: `NAME` from the environment, `file:PATH`
/// from the file system (the file's contents).
pub fn system_lookup(name: &str) -> Option<String> {
    match name.strip_prefix("file:") {
        Some(path) => std::fs::read_to_string(path).ok(),
        None => std::env::var(name).ok(),
    }
}

/// Expands `${VAR}` and `${file:PATH}` references in one string.
pub fn expand_str(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(body) = after.strip_prefix('{') {
            let end = body
                .find('}')
                .ok_or_else(|| "unterminated `${` (expected `${VAR}`)".to_string())?;
            let name = &body[..end];
            if let Some(path) = name.strip_prefix("file:") {
                if path.is_empty() {
                    return Err("`${file:}` names no file (expected `${file:/path}`)".into());
                }
                let value = env(name)
                    .ok_or_else(|| format!("cannot read the file {path} (`${{file:{path}}}`)"))?;
                // Secret files usually end with a newline that is not part of the value.
                out.push_str(value.trim_end_matches(['\n', '\r']));
                rest = &body[end + 1..];
                continue;
            }
            if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                return Err(format!("`${{{name}}}` is not a valid variable reference"));
            }
            let value =
                env(name).ok_or_else(|| format!("environment variable {name} is not set"))?;
            out.push_str(&value);
            rest = &body[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expansion_rules() {
        let env = |n: &str| (n == "A").then(|| "x".to_string());
        assert_eq!(expand_str("${A}-${A}", &env).unwrap(), "x-x");
        assert_eq!(
            expand_str("cost $$5 and $x", &env).unwrap(),
            "cost $5 and $x"
        );
        assert!(expand_str("${A", &env).is_err());
        assert!(
            expand_str("${B}", &env)
                .unwrap_err()
                .contains("B is not set")
        );
        assert!(expand_str("${a-b}", &env).is_err());
    }

    #[test]
    fn file_references_read_secrets_from_files() {
        let env = |name: &str| match name {
            "file:/run/secrets/bc" => Some("tok-from-file\n".to_string()),
            "STORE" => Some("abc".to_string()),
            _ => None,
        };
        assert_eq!(
            expand_str("${file:/run/secrets/bc}/${STORE}", &env).unwrap(),
            "tok-from-file/abc"
        );
        let e = expand_str("${file:/missing}", &env).unwrap_err();
        assert_eq!(e, "cannot read the file /missing (`${file:/missing}`)");
        assert!(expand_str("${file:}", &env).is_err());
    }
}
