//! The host's layout keeps its promises (`docs/ARCHITECTURE.md`): each wing imports only
//! from the wings below it, no two modules import each other (directly or round a longer
//! loop), and no host file matches on a guest's marker names.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The wings, lowest first: a wing may use the wings before it, never those after.
const WINGS: &[&str] = &["policy", "observe", "config", "net", "ws", "fetch", "runtime", "deploy", "call", "state", "http", "host"];

/// Module pairs that name each other by design, with why.
const ALLOWED_LOOPS: &[(&str, &str, &str)] = &[(
    "runtime::bindings",
    "runtime::types",
    "bindgen's `with` names the types behind the resources; the types name the WIT's error codes (wasmtime's wasi-http does the same)",
)];

/// Marker names of the voice pipeline (and any guest): the host must not know them.
const GUEST_VOCABULARY: &[&str] = &[
    "\"twilio.",
    "\"deepgram.",
    "\"pipeline.",
    "\"utterance\"",
    "\"transcript.final\"",
    "\"audio.overflow\"",
    "\"agent.",
    "\"llm.",
    "\"speak.",
];

/// The voice agent's vocabulary, which its scripted demo (`switchboard demo --agent`)
/// reads to print the turns: the one file allowed to know a guest's marker names, and only
/// the agent's.
const AGENT_DEMO: &str = "bin/switchboard/demo_agent.rs";
const AGENT_VOCABULARY: &[&str] = &["\"agent.", "\"llm.", "\"speak."];

fn source_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("readable source dir").flatten() {
        let path = entry.path();
        if path.is_dir() {
            source_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The module path of a source file: `http/public.rs` is `http::public`, `ws/mod.rs` is `ws`.
fn module_of(src: &Path, file: &Path) -> String {
    let relative = file.strip_prefix(src).expect("under src").with_extension("");
    let parts: Vec<String> = relative.iter().map(|p| p.to_string_lossy().into_owned()).filter(|p| p != "mod").collect();
    parts.join("::")
}

/// The file's code without comments (doc links are not imports) and without its tests.
fn code_of(text: &str) -> String {
    let code = text.split("#[cfg(test)]\nmod tests").next().unwrap_or(text);
    code.lines().filter(|line| !line.trim_start().starts_with("//")).collect::<Vec<_>>().join("\n")
}

/// Every `crate::a::b` and `super::x` path in `code`, resolved to absolute module-ish paths.
fn referenced_paths(module: &str, is_mod_file: bool, code: &str) -> Vec<Vec<String>> {
    let mut paths = Vec::new();
    let parent: Vec<String> = {
        let mut parts: Vec<String> = module.split("::").map(str::to_owned).collect();
        if !is_mod_file {
            parts.pop();
        }
        parts
    };
    let bytes = code.as_bytes();
    for (start, keyword) in [("crate::", None), ("super::", Some(()))] {
        let mut at = 0;
        while let Some(found) = code[at..].find(start) {
            let begin = at + found;
            at = begin + start.len();
            if begin > 0 && (bytes[begin - 1].is_ascii_alphanumeric() || bytes[begin - 1] == b'_') {
                continue;
            }
            let rest: String = code[at..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == ':').collect();
            let mut segments: Vec<String> = rest.split("::").filter(|s| !s.is_empty()).map(str::to_owned).collect();
            if keyword.is_some() {
                let mut absolute = parent.clone();
                absolute.append(&mut segments);
                segments = absolute;
            }
            paths.push(segments);
        }
    }
    paths
}

struct Tree {
    /// Modules by path, with their code.
    modules: BTreeMap<String, (bool, String)>,
    /// `pub use child::{Name, ...}` in a module: which child defines a re-exported name.
    reexports: BTreeMap<(String, String), String>,
}

impl Tree {
    fn load() -> Tree {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut files = Vec::new();
        source_files(&src, &mut files);
        let mut modules = BTreeMap::new();
        let mut reexports = BTreeMap::new();
        for file in files {
            let relative = file.strip_prefix(&src).expect("under src");
            if relative.starts_with("bin") || relative == Path::new("lib.rs") || relative.ends_with("tests.rs") {
                continue;
            }
            let module = module_of(&src, &file);
            let is_mod_file = file.file_name().is_some_and(|n| n == "mod.rs");
            let text = std::fs::read_to_string(&file).expect("readable source");
            for line in text.lines().filter(|l| l.trim_start().starts_with("pub use ") && !l.contains("crate::")) {
                let body = line.trim_start().trim_start_matches("pub use ").trim_end_matches(';');
                let Some((child, names)) = body.split_once("::") else { continue };
                let child = child.trim_start_matches("self::").trim_start_matches("super::");
                for name in names.trim_matches(|c| c == '{' || c == '}').split(',') {
                    let name = name.trim().split(" as ").last().unwrap_or_default().to_owned();
                    if !name.is_empty() {
                        reexports.insert((module.clone(), name), format!("{module}::{child}"));
                    }
                }
            }
            modules.insert(module, (is_mod_file, code_of(&text)));
        }
        Tree { modules, reexports }
    }

    /// The module a path names: the longest prefix that is a module, through re-exports.
    fn resolve(&self, path: &[String]) -> Option<String> {
        for length in (1..=path.len()).rev() {
            let candidate = path[..length].join("::");
            if self.modules.contains_key(&candidate) {
                if let Some(name) = path.get(length)
                    && let Some(child) = self.reexports.get(&(candidate.clone(), name.clone()))
                {
                    return Some(child.clone());
                }
                return Some(candidate);
            }
        }
        None
    }

    /// Module -> modules it uses (itself and its own ancestors excluded).
    fn edges(&self) -> BTreeMap<String, BTreeSet<String>> {
        let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (module, (is_mod_file, code)) in &self.modules {
            let used = edges.entry(module.clone()).or_default();
            for path in referenced_paths(module, *is_mod_file, code) {
                if let Some(target) = self.resolve(&path)
                    && target != *module
                    && !module.starts_with(&format!("{target}::"))
                {
                    used.insert(target);
                }
            }
        }
        edges
    }
}

fn wing(module: &str) -> &str {
    module.split("::").next().unwrap_or(module)
}

#[test]
fn no_wing_imports_from_a_wing_above_it() {
    let tree = Tree::load();
    let rank = |module: &str| WINGS.iter().position(|w| *w == wing(module));
    let mut upward = Vec::new();
    for (module, used) in tree.edges() {
        let Some(from) = rank(&module) else { panic!("module {module} is in no wing: add its wing to WINGS and docs/ARCHITECTURE.md") };
        for target in used {
            if rank(&target).is_some_and(|to| to > from) {
                upward.push(format!("{module} -> {target}"));
            }
        }
    }
    assert!(upward.is_empty(), "imports reaching up the layers:\n{}", upward.join("\n"));
}

#[test]
fn no_two_modules_import_each_other() {
    let edges = Tree::load().edges();
    let allowed = |a: &str, b: &str| ALLOWED_LOOPS.iter().any(|(x, y, _)| (*x == a && *y == b) || (*x == b && *y == a));
    // Every cycle goes through some edge a -> b with b reaching a again.
    let reaches = |from: &str, to: &str, skip: (&str, &str)| {
        let mut seen = BTreeSet::new();
        let mut stack = vec![from.to_owned()];
        while let Some(node) = stack.pop() {
            if node == to {
                return true;
            }
            if seen.insert(node.clone()) {
                for next in edges.get(&node).into_iter().flatten() {
                    if (node.as_str(), next.as_str()) != skip && !allowed(&node, next) {
                        stack.push(next.clone());
                    }
                }
            }
        }
        false
    };
    let mut loops = Vec::new();
    for (module, used) in &edges {
        for target in used {
            if !allowed(module, target) && reaches(target, module, (module, target)) {
                loops.push(format!("{module} -> {target} -> ... -> {module}"));
            }
        }
    }
    assert!(loops.is_empty(), "import loops:\n{}", loops.join("\n"));
}

#[test]
fn no_host_file_matches_on_a_guest_s_marker_names() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    source_files(&src, &mut files);
    let mut found = Vec::new();
    for file in files {
        let code = code_of(&std::fs::read_to_string(&file).expect("readable"));
        let demo = file.ends_with(AGENT_DEMO);
        for word in GUEST_VOCABULARY {
            if code.contains(word) && !(demo && AGENT_VOCABULARY.contains(word)) {
                found.push(format!("{}: {word}", file.display()));
            }
        }
    }
    let dashboard = std::fs::read_to_string(src.join("http/dashboard.html")).expect("dashboard");
    for word in GUEST_VOCABULARY {
        if dashboard.contains(word) {
            found.push(format!("dashboard.html: {word}"));
        }
    }
    assert!(found.is_empty(), "the host knows a guest's vocabulary:\n{}", found.join("\n"));
}
