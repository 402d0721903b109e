//! A global allocator that counts: the system allocator, with the bytes and blocks live
//! now and the large blocks handed out so far. A test binary installs it with
//! `#[global_allocator] static A: Counting = Counting;` and reads [`counts`].

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Blocks at least this large are counted by [`Counts::large_blocks`].
pub const LARGE: usize = 1024 * 1024;

static LIVE_BYTES: AtomicUsize = AtomicUsize::new(0);
static LIVE_BLOCKS: AtomicUsize = AtomicUsize::new(0);
static LARGE_BLOCKS: AtomicUsize = AtomicUsize::new(0);

/// What the allocator has counted, at one moment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Counts {
    /// Bytes asked for and not given back (what the program asked, not what the system
    /// allocator rounds it up to).
    pub live_bytes: usize,
    /// Blocks handed out and not given back.
    pub live_blocks: usize,
    /// Blocks of at least [`LARGE`] bytes handed out (reallocations included) so far.
    pub large_blocks: usize,
}

/// The counts now. Meaningful only in a binary whose global allocator is [`Counting`].
pub fn counts() -> Counts {
    Counts {
        live_bytes: LIVE_BYTES.load(Ordering::Relaxed),
        live_blocks: LIVE_BLOCKS.load(Ordering::Relaxed),
        large_blocks: LARGE_BLOCKS.load(Ordering::Relaxed),
    }
}

/// The system allocator, counting.
pub struct Counting;

fn given(size: usize) {
    LIVE_BYTES.fetch_add(size, Ordering::Relaxed);
    LIVE_BLOCKS.fetch_add(1, Ordering::Relaxed);
    if size >= LARGE {
        LARGE_BLOCKS.fetch_add(1, Ordering::Relaxed);
    }
}

fn taken_back(size: usize) {
    LIVE_BYTES.fetch_sub(size, Ordering::Relaxed);
    LIVE_BLOCKS.fetch_sub(1, Ordering::Relaxed);
}

// SAFETY: every call goes to the system allocator unchanged; only counters are added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's layout, as given.
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            given(layout.size());
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        taken_back(layout.size());
        // SAFETY: a block of this allocator, as given.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: a block of this allocator and the caller's new size, as given.
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            taken_back(layout.size());
            given(new_size);
        }
        new
    }
}
