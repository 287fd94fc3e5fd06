//! The tidy checks. Each returns a list of problems, each naming a file
//! or a crate and what to do.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Binary crates: they may depend only on library crates.
const DAEMONS: &[&str] = &[
    "master",
    "smtpd",
    "qmgr",
    "pickup",
    "anvil",
    "local-delivery",
    "postern-cli",
    "smtp-client",
    "pop3d",
    "imapd",
    "authd",
];

/// The repository root (this crate lives in `xtask/`).
pub(crate) fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_default()
}

/// Runs every check.
pub(crate) fn run_all(root: &Path) -> Result<(), Vec<String>> {
    let mut problems = dependency_rules(root);
    problems.extend(file_docs(root));
    problems.extend(banned_test_attributes(root));
    problems.extend(unread_parameters(root));
    if problems.is_empty() { Ok(()) } else { Err(problems) }
}

fn metadata(root: &Path) -> Result<serde_json::Value, String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--no-deps", "--offline"])
        .current_dir(root)
        .output()
        .map_err(|e| format!("cannot run cargo metadata: {e}"))?;
    if !out.status.success() {
        return Err(format!("cargo metadata failed: {}", String::from_utf8_lossy(&out.stderr)));
    }
    serde_json::from_slice(&out.stdout).map_err(|e| format!("cargo metadata output: {e}"))
}

/// Library edges that must point one way only, `(crate, must not depend
/// on)`: the lookup tables build on users and passwords, never the
/// reverse, so a daemon that needs only lookups gets no password code
/// through them.
const FORBIDDEN_EDGES: &[(&str, &str)] = &[("mail-auth", "mail-lookup")];

/// No daemon depends on another daemon; `*-proto` crates and
/// `mail-types` do no async I/O; the edges of [`FORBIDDEN_EDGES`] do not
/// exist.
pub(crate) fn dependency_rules(root: &Path) -> Vec<String> {
    let meta = match metadata(root) {
        Ok(m) => m,
        Err(e) => return vec![e],
    };
    let mut problems = Vec::new();
    let empty = Vec::new();
    for pkg in meta["packages"].as_array().unwrap_or(&empty) {
        let name = pkg["name"].as_str().unwrap_or_default();
        let deps: Vec<&str> = pkg["dependencies"]
            .as_array()
            .unwrap_or(&empty)
            .iter()
            .filter(|d| d["kind"].is_null())
            .filter_map(|d| d["name"].as_str())
            .collect();
        for d in &deps {
            if DAEMONS.contains(d) {
                problems.push(format!("crate {name} depends on the daemon crate {d}: move the shared code into a library crate"));
            }
            if FORBIDDEN_EDGES.contains(&(name, *d)) {
                problems.push(format!(
                    "crate {name} depends on {d}: {d} is built on {name}, not the reverse"
                ));
            }
            if (name.ends_with("-proto") || name == "mail-types")
                && (*d == "tokio" || d.starts_with("mail-") && *d != "mail-types")
            {
                problems.push(format!(
                    "crate {name} depends on {d}: protocol crates and mail-types do no I/O"
                ));
            }
        }
    }
    problems
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            if p.file_name().is_some_and(|n| n == "target") {
                continue;
            }
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// Every `.rs` file starts with `//!`.
pub(crate) fn file_docs(root: &Path) -> Vec<String> {
    let mut files = Vec::new();
    for dir in ["crates", "tests", "xtask", "fuzz/fuzz_targets"] {
        rust_files(&root.join(dir), &mut files);
    }
    files
        .into_iter()
        .filter(|f| !std::fs::read_to_string(f).unwrap_or_default().trim_start().starts_with("//!"))
        .map(|f| format!("{}: add a //! comment saying what this file is for", f.display()))
        .collect()
}

/// No ignored tests and no should_panic tests.
pub(crate) fn banned_test_attributes(root: &Path) -> Vec<String> {
    let mut files = Vec::new();
    for dir in ["crates", "tests"] {
        rust_files(&root.join(dir), &mut files);
    }
    let mut problems = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap_or_default();
        for (i, line) in text.lines().enumerate() {
            let t = line.trim_start();
            if t.starts_with("#[ignore") || t.starts_with("#[should_panic") {
                problems.push(format!(
                    "{}:{}: {t}: tests must run and must not expect a panic",
                    f.display(),
                    i + 1
                ));
            }
        }
    }
    problems
}

/// How the doc of a declared parameter that nothing acts on starts
/// (mail-config's `settings::UNIMPLEMENTED_PREFIX` and `COMPAT_PREFIX`).
const UNREAD_MARKS: [&str; 2] = ["Not yet implemented", "Accepted for compatibility"];

/// One `p("name", KIND, "default", "doc"),` line of params.rs: name,
/// default, doc.
fn param_line(line: &str) -> Option<(&str, &str, &str)> {
    let rest = line.trim().strip_prefix("p(\"")?;
    let (name, rest) = rest.split_once('"')?;
    let tail = rest.strip_suffix("\"),")?;
    let doc_at = tail.rfind("\", \"")?;
    let (before, doc) = (&tail[..doc_at], &tail[doc_at + 4..]);
    let default = &before[before.rfind(", \"")? + 3..];
    Some((name, default, doc))
}

/// Whether `code` mentions `name` as a field (`.name`, lower case, as a
/// Rust field must be: `smtp_tls_CAfile` is read as `.smtp_tls_cafile`)
/// or a literal (`"name"`), the two ways a program reads a parameter.
fn mentions(code: &str, name: &str) -> bool {
    if code.contains(&format!("\"{name}\"")) {
        return true;
    }
    let field = format!(".{}", name.to_ascii_lowercase());
    code.match_indices(&field).any(|(at, _)| {
        !code[at + field.len()..]
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_')
    })
}

/// Postfix's `check-postconf-undocumented`, turned round: every parameter
/// declared in `crates/mail-config/src/params.rs` is read by some program
/// outside mail-config (a field of its typed settings or a literal name,
/// in code that is not a comment or a test module) or used in another
/// parameter's default (`$mydomain`), unless its doc says it is not
/// implemented or accepted only for compatibility; and a marked one is
/// not read.
pub(crate) fn unread_parameters(root: &Path) -> Vec<String> {
    let params_rs = root.join("crates/mail-config/src/params.rs");
    let Ok(params) = std::fs::read_to_string(&params_rs) else {
        return vec![format!("{}: cannot read", params_rs.display())];
    };
    let decls: Vec<_> = params.lines().filter_map(param_line).collect();
    if decls.is_empty() {
        return vec![format!("{}: no p(...) declarations found", params_rs.display())];
    }
    let mut files = Vec::new();
    rust_files(&root.join("crates"), &mut files);
    let mut code = String::new();
    // import-postfix names parameters as data (which Postfix ones to
    // leave out), which is not reading them.
    let import = root.join("crates/postern-cli/src/import_postfix.rs");
    for f in
        files.iter().filter(|f| !f.starts_with(root.join("crates/mail-config")) && **f != import)
    {
        let text = std::fs::read_to_string(f).unwrap_or_default();
        let text = text.split("#[cfg(test)]").next().unwrap_or_default();
        for line in text.lines().filter(|l| !l.trim_start().starts_with("//")) {
            code.push_str(line);
            code.push('\n');
        }
    }
    let defaults: String = decls.iter().map(|(_, d, _)| format!("{d} ")).collect();
    let mut problems = Vec::new();
    for (name, _, doc) in &decls {
        let marked = UNREAD_MARKS.iter().any(|m| doc.starts_with(m));
        let used = mentions(&code, name)
            || defaults.contains(&format!("${name}"))
            || defaults.contains(&format!("${{{name}}}"));
        if !used && !marked {
            problems.push(format!(
                "{}: parameter {name} is declared but no program reads it; read it, or start \
                 its doc with \"Not yet implemented\"",
                params_rs.display()
            ));
        }
        if used && marked {
            problems.push(format!(
                "{}: parameter {name} is read by a program, but its doc says it is not \
                 implemented; drop the mark",
                params_rs.display()
            ));
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dependency_rules_hold() {
        let p = dependency_rules(&workspace_root());
        assert!(p.is_empty(), "{}", p.join("\n"));
    }

    #[test]
    fn every_file_has_a_doc_comment() {
        let p = file_docs(&workspace_root());
        assert!(p.is_empty(), "{}", p.join("\n"));
    }

    #[test]
    fn every_declared_parameter_is_read_or_marked() {
        let p = unread_parameters(&workspace_root());
        assert!(p.is_empty(), "{}", p.join("\n"));
    }

    #[test]
    fn parameter_lines_and_mentions() {
        let l = r#"    p("smtpd_banner", Kind::Str, "$myhostname ESMTP $mail_name", "The text, after 220."),"#;
        assert_eq!(
            param_line(l),
            Some(("smtpd_banner", "$myhostname ESMTP $mail_name", "The text, after 220."))
        );
        let l = r#"    p("mydestination", Kind::List, "$myhostname, localhost", "Local \"domains\", here."),"#;
        assert_eq!(param_line(l).map(|p| p.1), Some("$myhostname, localhost"));
        assert_eq!(param_line("// p(\"x\""), None);
        assert!(mentions("let t = s.smtpd_timeout;", "smtpd_timeout"));
        assert!(mentions("c.str(\"relayhost\")", "relayhost"));
        assert!(!mentions("s.smtpd_timeout_x", "smtpd_timeout"));
        assert!(!mentions("relayhost", "relayhost"));
    }

    #[test]
    fn no_ignored_or_should_panic_tests() {
        let p = banned_test_attributes(&workspace_root());
        assert!(p.is_empty(), "{}", p.join("\n"));
    }
}
