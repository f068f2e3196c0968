//! Compiled components shared between test hosts: each host keeps its own data directory
//! (its call store stays its own) while the machine code of a component, once compiled by
//! one host, is hard-linked into the artifact store of the next.

use std::path::Path;
use std::sync::Mutex;

/// One host at a time compiles and publishes, so hosts started together compile once.
static PUBLISHING: Mutex<()> = Mutex::new(());

/// Links what `cache` holds into `data_dir`'s artifact store, runs `start`, and links what
/// it compiled back into `cache`.
pub(crate) fn start_sharing<T>(cache: &Path, data_dir: &Path, start: impl FnOnce() -> T) -> std::io::Result<T> {
    let _one_at_a_time = PUBLISHING.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let compiled = data_dir.join("compiled");
    std::fs::create_dir_all(cache)?;
    std::fs::create_dir_all(&compiled)?;
    link_all(cache, &compiled)?;
    let started = start();
    link_all(&compiled, cache)?;
    Ok(started)
}

/// Hard-links (or, across file systems, copies) every file of `from` missing in `to`.
fn link_all(from: &Path, to: &Path) -> std::io::Result<()> {
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if target.exists() || !entry.file_type()?.is_file() {
            continue;
        }
        if std::fs::hard_link(entry.path(), &target).is_err() {
            let partial = to.join(format!(".{}.partial", entry.file_name().to_string_lossy()));
            std::fs::copy(entry.path(), &partial)?;
            std::fs::rename(&partial, &target)?;
        }
    }
    Ok(())
}
