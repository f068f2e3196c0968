//! The memory limit of an instance: linear memory and tables capped, and whether the cap
//! was hit remembered, so a trap that follows can be blamed on it.

use wasmtime::ResourceLimiter;

/// Table elements an instance may grow to.
const MAX_TABLE_ELEMENTS: usize = 100_000;

/// Caps linear memory and tables.
#[derive(Debug)]
pub struct MemoryLimiter {
    max_bytes: usize,
    hit: bool,
    largest: usize,
}

impl MemoryLimiter {
    /// A limiter allowing `max_bytes` of linear memory.
    pub fn new(max_bytes: usize) -> Self {
        MemoryLimiter { max_bytes, hit: false, largest: 0 }
    }

    /// The largest size any of the instance's linear memories reached, bytes (reserved
    /// by the guest, not necessarily touched).
    pub fn largest(&self) -> usize {
        self.largest
    }

    /// Whether a growth was refused.
    pub fn hit(&self) -> bool {
        self.hit
    }
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(&mut self, current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        if desired > self.max_bytes {
            self.hit = true;
            self.largest = self.largest.max(current);
            return Ok(false);
        }
        self.largest = self.largest.max(desired);
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }
}
