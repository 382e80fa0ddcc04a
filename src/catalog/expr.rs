//! CEL expressions of control files, compiled once at load.

use std::collections::BTreeSet;
use std::sync::{Arc, LazyLock};

use cel::common::ast::{EntryExpr, Expr as Node};
use cel::{Env, IdedExpr, Program};

/// Names every expression may use besides the probe's attributes.
pub const BUILTIN_VARIABLES: &[&str] = &["now"];

/// The shared CEL environment (standard library).
pub static ENV: LazyLock<Arc<Env>> = LazyLock::new(|| Arc::new(Env::stdlib()));

/// A compiled CEL expression and the attribute names it reads.
#[derive(Clone)]
pub struct Expr {
    pub source: String,
    pub program: Arc<Program>,
    /// The probe attributes the expression references, sorted (reported as "actual" values).
    pub attributes: Vec<String>,
}

impl std::fmt::Debug for Expr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Expr({:?})", self.source)
    }
}

impl Expr {
    /// Compiles `source`, checking that every free variable is one of `attributes` or a
    /// builtin (`now`). Errors are lowercase sentences with the column within the expression.
    pub fn compile(source: &str, attributes: &[&str]) -> Result<Expr, String> {
        if source.trim().is_empty() {
            return Err("expression is empty".into());
        }
        let program = ENV.compile(source).map_err(|errs| {
            errs.errors
                .iter()
                .map(|e| {
                    let msg = e.msg.trim();
                    let msg = msg.strip_prefix("Syntax error: ").unwrap_or(msg);
                    format!("cel syntax error at column {}: {msg}", e.pos.1.max(0) + 1)
                })
                .collect::<Vec<_>>()
                .join("; ")
        })?;
        let mut free = BTreeSet::new();
        free_variables(program.expression(), &mut Vec::new(), &mut free);
        let unknown: Vec<&String> = free
            .iter()
            .filter(|v| {
                !attributes.contains(&v.as_str()) && !BUILTIN_VARIABLES.contains(&v.as_str())
            })
            .collect();
        if !unknown.is_empty() {
            let names: Vec<String> = unknown.iter().map(|v| format!("`{v}`")).collect();
            return Err(format!(
                "unknown attribute {} (available: {})",
                names.join(", "),
                attributes.join(", ")
            ));
        }
        let attributes = free
            .into_iter()
            .filter(|v| attributes.contains(&v.as_str()))
            .collect();
        Ok(Expr {
            source: source.trim().to_string(),
            program: Arc::new(program),
            attributes,
        })
    }
}

/// Collects identifiers that are not bound by an enclosing comprehension.
fn free_variables(e: &IdedExpr, bound: &mut Vec<String>, out: &mut BTreeSet<String>) {
    match &e.expr {
        Node::Ident(name) => {
            if !name.starts_with('@') && !bound.iter().any(|b| b == name) {
                out.insert(name.clone());
            }
        }
        Node::Call(call) => {
            if let Some(t) = &call.target {
                free_variables(t, bound, out);
            }
            for a in &call.args {
                free_variables(a, bound, out);
            }
        }
        Node::Comprehension(c) => {
            free_variables(&c.iter_range, bound, out);
            free_variables(&c.accu_init, bound, out);
            let before = bound.len();
            bound.push(c.iter_var.clone());
            if let Some(v2) = &c.iter_var2 {
                bound.push(v2.clone());
            }
            bound.push(c.accu_var.clone());
            free_variables(&c.loop_cond, bound, out);
            free_variables(&c.loop_step, bound, out);
            free_variables(&c.result, bound, out);
            bound.truncate(before);
        }
        Node::List(l) => l
            .elements
            .iter()
            .for_each(|x| free_variables(x, bound, out)),
        Node::Map(m) => {
            for entry in &m.entries {
                match &entry.expr {
                    EntryExpr::StructField(f) => free_variables(&f.value, bound, out),
                    EntryExpr::MapEntry(me) => {
                        free_variables(&me.key, bound, out);
                        free_variables(&me.value, bound, out);
                    }
                }
            }
        }
        Node::Select(s) => free_variables(&s.operand, bound, out),
        Node::Struct(s) => {
            for entry in &s.entries {
                match &entry.expr {
                    EntryExpr::StructField(f) => free_variables(&f.value, bound, out),
                    EntryExpr::MapEntry(me) => {
                        free_variables(&me.key, bound, out);
                        free_variables(&me.value, bound, out);
                    }
                }
            }
        }
        Node::Literal(_) | Node::Unspecified => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ATTRS: &[&str] = &["end_date", "tags", "name"];

    #[test]
    fn compile_checks_free_variables() {
        let check = |src: &str, expect: Result<&[&str], &str>| {
            let got = Expr::compile(src, ATTRS);
            match (got, expect) {
                (Ok(e), Ok(attrs)) => assert_eq!(e.attributes, attrs, "{src}"),
                (Err(msg), Err(want)) => assert!(msg.contains(want), "{src}: {msg}"),
                (got, want) => panic!("{src}: got {got:?}, want {want:?}"),
            }
        };
        check("end_date == null", Ok(&["end_date"]));
        check(
            "tags.all(t, t != name) && now > end_date",
            Ok(&["end_date", "name", "tags"]),
        );
        check("tags.exists(x, x == 'a')", Ok(&["tags"]));
        check("x == 1", Err("unknown attribute `x`"));
        check("tags.all(t, t == u)", Err("unknown attribute `u`"));
        check("end_date ==", Err("cel syntax error at column"));
        check("  ", Err("empty"));
    }
}
