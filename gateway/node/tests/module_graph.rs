//! The node crate's modules import each other without cycles: no module imports a module that
//! (directly or through others) imports it back. Read from the source: every `crate::…`,
//! `super::…` and `self::…` path in a file is an edge to the module file it names (`mod`
//! declarations are not edges: a parent only declares its children).
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Module path (`["slots", "agent"]`) of a source file under `src/`.
fn module_of(src: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src).unwrap().with_extension("");
    let mut parts: Vec<String> = rel.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    if parts.last().is_some_and(|p| p == "mod" || p == "lib" || p == "main") {
        parts.pop();
    }
    parts
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            if p.file_name().is_some_and(|n| n != "bin") {
                rust_files(&p, out);
            }
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// Strip comments and string literals, so that paths in docs do not count.
fn code_only(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let b = text.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'/' && b.get(i + 1) == Some(&b'/') {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if b[i] == b'"' {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                i += if b[i] == b'\\' { 2 } else { 1 };
            }
            i += 1;
            out.push_str("\"\"");
        } else {
            out.push(b[i] as char);
            i += 1;
        }
    }
    out
}

/// Path segments following each `crate::` / `super::` / `self::` in `code`, made absolute for
/// the module `here`. A `use a::{b, c::d}` group yields its prefix only (enough to name the
/// module a group is imported from in this crate's style).
fn referenced(code: &str, here: &[String]) -> Vec<Vec<String>> {
    let mut refs = Vec::new();
    let bytes = code.as_bytes();
    for start in ["crate::", "super::", "self::"] {
        let mut from = 0;
        while let Some(pos) = code[from..].find(start) {
            let at = from + pos;
            from = at + start.len();
            if at > 0 {
                let prev = bytes[at - 1];
                if prev.is_ascii_alphanumeric() || prev == b'_' || prev == b':' {
                    continue;
                }
            }
            // The module this path is relative to.
            let base: Vec<String> = match start {
                "crate::" => Vec::new(),
                // `super` of a `mod.rs` is its parent module's parent.
                // `super` is the parent module, for a `mod.rs` as for a plain file: `here` is
                // the module path either way.
                "super::" => {
                    let mut b = here.to_vec();
                    b.pop();
                    b
                }
                _ => here.to_vec(),
            };
            follow(&code[from..], base, &mut refs);
        }
    }
    refs
}

/// Walk the path segments at the start of `rest` from `base`; a `{a, b::c}` group walks each
/// member. Pushes every path reached.
fn follow(mut rest: &str, mut base: Vec<String>, refs: &mut Vec<Vec<String>>) {
    loop {
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 0;
            let mut start = 0;
            for (i, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => {
                        follow(group[start..i].trim_start(), base.clone(), refs);
                        return;
                    }
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        follow(group[start..i].trim_start(), base.clone(), refs);
                        start = i + 1;
                    }
                    _ => {}
                }
            }
            return;
        }
        let seg: String =
            rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
        if seg.is_empty() {
            break;
        }
        if seg == "super" {
            base.pop();
        } else if seg != "self" {
            base.push(seg.clone());
        }
        rest = &rest[seg.len()..];
        match rest.strip_prefix("::") {
            Some(r) => rest = r,
            None => break,
        }
    }
    refs.push(base);
}

#[test]
fn no_module_imports_a_module_that_imports_it_back() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let modules: BTreeSet<Vec<String>> = files.iter().map(|f| module_of(&src, f)).collect();
    // The longest module prefix of a path names the file it points into.
    let resolve = |path: &[String]| -> Option<Vec<String>> {
        (0..=path.len()).rev().map(|n| path[..n].to_vec()).find(|m| modules.contains(m))
    };
    let mut edges: BTreeMap<Vec<String>, BTreeSet<Vec<String>>> = BTreeMap::new();
    for f in &files {
        let here = module_of(&src, f);
        let code = code_only(&std::fs::read_to_string(f).unwrap());
        // Test modules inside a file may reach anywhere; they are not part of the graph.
        let code = code.split("#[cfg(test)]").next().unwrap_or("").to_string();
        for r in referenced(&code, &here) {
            if let Some(to) = resolve(&r) {
                // Edges to the crate root or to one's own ancestors through `lib.rs` paths only
                // name where an item is declared, not a dependency cycle of their own.
                if to != here && !to.is_empty() {
                    edges.entry(here.clone()).or_default().insert(to);
                }
            }
        }
    }
    // Tarjan-free check: a cycle exists iff some module reaches itself.
    let mut cycles = Vec::new();
    for m in &modules {
        let mut stack: Vec<(Vec<String>, Vec<Vec<String>>)> = vec![(m.clone(), vec![m.clone()])];
        let mut seen = BTreeSet::new();
        while let Some((at, trail)) = stack.pop() {
            for next in edges.get(&at).into_iter().flatten() {
                if next == m {
                    let mut t = trail.clone();
                    t.push(next.clone());
                    cycles.push(t.iter().map(|p| p.join("::")).collect::<Vec<_>>().join(" -> "));
                } else if seen.insert(next.clone()) {
                    let mut t = trail.clone();
                    t.push(next.clone());
                    stack.push((next.clone(), t));
                }
            }
        }
    }
    cycles.sort();
    cycles.dedup();
    assert!(cycles.is_empty(), "import cycles between the node's modules:\n{}", cycles.join("\n"));
}
