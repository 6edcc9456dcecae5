//! Independent work spread over the machine's cores: scoped threads, no
//! pool, results in input order.
//!
//! Only pure work goes through here (age wraps and unwraps, value ciphers,
//! re-reading a result): it shares nothing mutable, so the result is the
//! same, byte for byte, whatever the number of threads. Small batches stay
//! on the calling thread, where starting a thread would cost more than it
//! saves.

use std::ops::Range;
use std::sync::OnceLock;

/// The most threads a batch is spread over.
const MAX_THREADS: usize = 8;

/// How many threads may run at once (the cores ksec may use), asked once.
pub fn threads() -> usize {
    static N: OnceLock<usize> = OnceLock::new();
    *N.get_or_init(|| {
        std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(MAX_THREADS)
    })
}

/// How many threads `len` items take in chunks of at least `min_chunk`:
/// one when fewer than two chunks would be full.
fn spread(len: usize, min_chunk: usize) -> usize {
    let wanted = len / min_chunk.max(1);
    if wanted < 2 { 1 } else { wanted.min(threads()) }
}

/// `items.iter().map(f).collect()`, in chunks of at least `min_chunk`
/// items on up to [`threads`] threads (the calling thread takes the first
/// chunk). Order is kept; a panic in any chunk is resumed on the caller.
pub fn map<T, R, F>(items: &[T], min_chunk: usize, f: F) -> Vec<R>
where
    T: Sync,
    R: Send,
    F: Fn(&T) -> R + Sync,
{
    map_range(items.len(), min_chunk, |i| f(&items[i]))
}

/// `(0..len).map(f).collect()`, spread as [`map`] spreads its items.
pub fn map_range<R, F>(len: usize, min_chunk: usize, f: F) -> Vec<R>
where
    R: Send,
    F: Fn(usize) -> R + Sync,
{
    let n = spread(len, min_chunk);
    if n < 2 {
        return (0..len).map(f).collect();
    }
    let size = len.div_ceil(n);
    let f = &f;
    std::thread::scope(|s| {
        let others: Vec<_> = (1..n)
            .map(|t| {
                let chunk = (t * size).min(len)..((t + 1) * size).min(len);
                s.spawn(move || chunk.map(f).collect::<Vec<R>>())
            })
            .collect();
        let mut out: Vec<R> = Vec::with_capacity(len);
        out.extend((0..size.min(len)).map(f));
        for h in others {
            match h.join() {
                Ok(part) => out.extend(part),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        out
    })
}

/// `items.iter().map(f).collect::<Result<Vec<R>, E>>()`, spread as [`map`]
/// spreads its items: the error is the first in item order, and the result
/// is exactly as long as `items` (no room kept from a vector of results,
/// which an in-place `collect` would keep).
pub fn try_map<T, R, E, F>(items: &[T], min_chunk: usize, f: F) -> Result<Vec<R>, E>
where
    T: Sync,
    R: Send,
    E: Send,
    F: Fn(&T) -> Result<R, E> + Sync,
{
    try_map_range(0..items.len(), min_chunk, |i| f(&items[i]))
}

/// `range.map(f).collect::<Result<Vec<R>, E>>()`, as [`try_map`].
pub fn try_map_range<R, E, F>(range: Range<usize>, min_chunk: usize, f: F) -> Result<Vec<R>, E>
where
    R: Send,
    E: Send,
    F: Fn(usize) -> Result<R, E> + Sync,
{
    let len = range.len();
    let n = spread(len, min_chunk);
    if n < 2 {
        let mut out = Vec::with_capacity(len);
        for i in range {
            out.push(f(i)?);
        }
        return Ok(out);
    }
    let size = len.div_ceil(n);
    let f = &f;
    let chunk =
        |t: usize| range.start + (t * size).min(len)..range.start + ((t + 1) * size).min(len);
    std::thread::scope(|s| {
        let others: Vec<_> = (1..n)
            .map(|t| {
                let c = chunk(t);
                s.spawn(move || c.map(f).collect::<Result<Vec<R>, E>>())
            })
            .collect();
        let mut out: Vec<R> = Vec::with_capacity(len);
        let mut failed = None;
        for r in chunk(0).map(f) {
            match r {
                Ok(v) => out.push(v),
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        for h in others {
            match h.join() {
                Ok(Ok(part)) if failed.is_none() => out.extend(part),
                Ok(Err(e)) if failed.is_none() => failed = Some(e),
                Ok(_) => {}
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        match failed {
            Some(e) => Err(e),
            None => Ok(out),
        }
    })
}

/// `(0..len).try_for_each(f)`, spread as [`map`] spreads its items: the
/// error is the first in index order, and nothing is collected (a check of
/// 100,000 values keeps no result per value).
pub fn try_each<E, F>(len: usize, min_chunk: usize, f: F) -> Result<(), E>
where
    E: Send,
    F: Fn(usize) -> Result<(), E> + Sync,
{
    let n = spread(len, min_chunk);
    if n < 2 {
        return (0..len).try_for_each(f);
    }
    let size = len.div_ceil(n);
    let f = &f;
    std::thread::scope(|s| {
        let others: Vec<_> = (1..n)
            .map(|t| {
                let chunk = (t * size).min(len)..((t + 1) * size).min(len);
                s.spawn(move || chunk.into_iter().try_for_each(f))
            })
            .collect();
        let mut result = (0..size.min(len)).try_for_each(f);
        for h in others {
            match h.join() {
                Ok(r) if result.is_ok() => result = r,
                Ok(_) => {}
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        result
    })
}

/// `items.iter_mut().map(f).collect()`, spread as [`map`] spreads its
/// items.
pub fn map_mut<T, R, F>(items: &mut [T], min_chunk: usize, f: F) -> Vec<R>
where
    T: Send,
    R: Send,
    F: Fn(&mut T) -> R + Sync,
{
    let len = items.len();
    let n = spread(len, min_chunk);
    if n < 2 {
        return items.iter_mut().map(f).collect();
    }
    let size = len.div_ceil(n);
    let f = &f;
    std::thread::scope(|s| {
        let mut chunks = items.chunks_mut(size);
        let first = chunks.next().unwrap_or_default();
        let others: Vec<_> = chunks
            .map(|c| s.spawn(move || c.iter_mut().map(f).collect::<Vec<R>>()))
            .collect();
        let mut out: Vec<R> = Vec::with_capacity(len);
        out.extend(first.iter_mut().map(f));
        for h in others {
            match h.join() {
                Ok(part) => out.extend(part),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        out
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_order_for_every_size() {
        for len in [0, 1, 2, 3, 7, 8, 9, 100, 1001] {
            let items: Vec<usize> = (0..len).collect();
            for min in [1, 2, 3, 1000] {
                let out = map(&items, min, |i| i * 2);
                assert_eq!(out, items.iter().map(|i| i * 2).collect::<Vec<_>>());
                let mut copy = items.clone();
                let out = map_mut(&mut copy, min, |i| {
                    *i += 1;
                    *i
                });
                assert_eq!(out, items.iter().map(|i| i + 1).collect::<Vec<_>>());
                assert_eq!(copy, out);
            }
        }
    }

    #[test]
    fn try_map_gives_every_result_or_the_first_error_in_order() {
        for len in [0, 1, 2, 3, 7, 8, 9, 100, 1001] {
            let items: Vec<usize> = (0..len).collect();
            for min in [1, 2, 3, 1000] {
                let ok: Result<Vec<usize>, usize> = try_map(&items, min, |i| Ok(i * 2));
                let ok = ok.unwrap();
                assert_eq!(ok, items.iter().map(|i| i * 2).collect::<Vec<_>>());
                assert_eq!(ok.capacity(), len);
                // Items 3 and up fail (in every chunk past the first): the
                // error is item 3's.
                let err = try_map(&items, min, |&i| if i >= 3 { Err(i) } else { Ok(i) });
                if len > 3 {
                    assert_eq!(err, Err(3));
                } else {
                    assert_eq!(err, Ok(items.clone()));
                }
                // Only the last item fails.
                let last = try_map(&items, min, |&i| if i + 1 == len { Err(i) } else { Ok(i) });
                if len > 0 {
                    assert_eq!(last, Err(len - 1));
                }
                // A range that does not start at 0.
                let shifted: Result<Vec<usize>, usize> = try_map_range(5..5 + len, min, Ok);
                assert_eq!(shifted.unwrap(), (5..5 + len).collect::<Vec<_>>());
                let err = try_map_range(5..5 + len, min, |i| if i >= 8 { Err(i) } else { Ok(i) });
                assert_eq!(err.err(), (len > 3).then_some(8), "the first failure");
            }
        }
    }

    #[test]
    fn try_each_visits_every_index_or_gives_the_first_error_in_order() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        for len in [0, 1, 2, 3, 7, 8, 9, 100, 1001] {
            for min in [1, 2, 3, 1000] {
                let sum = AtomicUsize::new(0);
                let all: Result<(), usize> = try_each(len, min, |i| {
                    sum.fetch_add(i + 1, Ordering::Relaxed);
                    Ok(())
                });
                assert_eq!(all, Ok(()));
                assert_eq!(sum.into_inner(), len * (len + 1) / 2);
                // Indices 3 and up fail: the error is index 3's.
                let err = try_each(len, min, |i| if i >= 3 { Err(i) } else { Ok(()) });
                assert_eq!(err, if len > 3 { Err(3) } else { Ok(()) });
                let last = try_each(len, min, |i| if i + 1 == len { Err(i) } else { Ok(()) });
                assert_eq!(last, if len > 0 { Err(len - 1) } else { Ok(()) });
            }
        }
    }
}
