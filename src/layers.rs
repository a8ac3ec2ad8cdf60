//! Checks the layering that the crate doc states, from the sources: every
//! module uses only modules of lower layers, and no two files of one
//! module use each other in a cycle. References are what the code names
//! (`crate::x::…`, `super::…`, `use crate::{…}`), comments and test modules
//! left out.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The layers, lowest first; a module may use only modules of lower ones.
const LAYERS: &[&[&str]] = &[
    &["clock", "error", "failpoint", "report"],
    &["interrupt", "names"],
    &["io", "lock"],
    &["backend", "index"],
    &["fs", "repo"],
    &["blob"],
    &["ops"],
    &["cli"],
];

/// Every `.rs` file under `src/` as its module path (`repo::chain`), with
/// its code minus comment lines and the trailing `#[cfg(test)] mod tests`.
fn sources() -> BTreeMap<String, String> {
    fn walk(dir: &Path, base: &Path, out: &mut BTreeMap<String, String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, base, out);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let rel = path.strip_prefix(base).unwrap().with_extension("");
            let mut parts: Vec<String> = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            if parts.last().is_some_and(|p| p == "mod") {
                parts.pop();
            }
            // The crate roots (the library, the binaries) and this file.
            if parts == ["lib"]
                || parts == ["main"]
                || parts == ["layers"]
                || parts.first().is_some_and(|p| p == "bin")
            {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let text = match text.find("#[cfg(test)]\nmod tests") {
                Some(i) => &text[..i],
                None => &text[..],
            };
            let code: String = text
                .lines()
                .filter(|l| !l.trim_start().starts_with("//"))
                .map(|l| format!("{l}\n"))
                .collect();
            out.insert(parts.join("::"), code);
        }
    }
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut out = BTreeMap::new();
    walk(&src, &src, &mut out);
    out
}

/// The identifier path that starts at `s` (`a::b::c`), lowercase only.
fn path_at(s: &str) -> Vec<&str> {
    let end = s
        .find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == ':'))
        .unwrap_or(s.len());
    s[..end].split("::").filter(|p| !p.is_empty()).collect()
}

/// The modules `code` (the file of module `me`) refers to.
fn refs(me: &str, code: &str, modules: &BTreeSet<String>) -> BTreeSet<String> {
    let parent: Vec<&str> = {
        let mut p: Vec<&str> = me.split("::").collect();
        p.pop();
        p
    };
    let longest = |segs: Vec<&str>| -> Option<String> {
        (1..=segs.len())
            .rev()
            .map(|k| segs[..k].join("::"))
            .find(|c| modules.contains(c))
    };
    let mut out = BTreeSet::new();
    for (prefix, base) in [("crate::", Vec::new()), ("super::", parent.clone())] {
        for (i, _) in code.match_indices(prefix) {
            let rest = &code[i + prefix.len()..];
            if let Some(group) = rest.strip_prefix('{') {
                let group = &group[..group.find('}').unwrap_or(group.len())];
                for item in group.split(',') {
                    let mut segs = base.clone();
                    segs.extend(path_at(item.trim()));
                    out.extend(longest(segs));
                }
            } else {
                let mut segs = base.clone();
                segs.extend(path_at(rest));
                out.extend(longest(segs));
            }
        }
    }
    out.remove(me);
    out
}

fn top(m: &str) -> &str {
    m.split("::").next().unwrap_or(m)
}

#[test]
fn every_module_uses_only_lower_layers_and_no_files_of_a_module_form_a_cycle() {
    let sources = sources();
    let modules: BTreeSet<String> = sources.keys().cloned().collect();
    let layer_of = |m: &str| LAYERS.iter().position(|l| l.contains(&top(m)));
    let mut wrong = Vec::new();
    let mut within: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (me, code) in &sources {
        let Some(mine) = layer_of(me) else {
            wrong.push(format!(
                "{me} is in no layer: add it to LAYERS and the crate doc"
            ));
            continue;
        };
        for used in refs(me, code, &modules) {
            if top(&used) == top(me) {
                if !used.starts_with(&format!("{me}::")) && !me.starts_with(&format!("{used}::")) {
                    within.entry(me.clone()).or_default().insert(used);
                }
                continue;
            }
            if layer_of(&used).is_none_or(|theirs| theirs >= mine) {
                wrong.push(format!("{me} uses {used}, which is not in a lower layer"));
            }
        }
    }
    // Depth-first search for a cycle among the files of one module.
    fn cycle(
        at: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|p| p == at) {
            return Some(path[i..].to_vec());
        }
        if !done.insert(at.to_string()) {
            return None;
        }
        path.push(at.to_string());
        for next in edges.get(at).into_iter().flatten() {
            if let Some(c) = cycle(next, edges, path, done) {
                return Some(c);
            }
        }
        path.pop();
        None
    }
    let mut done = BTreeSet::new();
    for start in within.keys() {
        if let Some(c) = cycle(start, &within, &mut Vec::new(), &mut done) {
            wrong.push(format!("import cycle: {}", c.join(" -> ")));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn the_checker_sees_a_reference_through_a_use_group_and_through_super() {
    let modules: BTreeSet<String> = ["io", "io::atomic", "io::direct", "repo"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let code = "use super::{atomic::AtomicFile, x};\nfn f() { crate::repo::join(); }\n";
    let got = refs("io::direct", code, &modules);
    assert!(
        got.contains("io::atomic") && got.contains("repo"),
        "{got:?}"
    );
}
