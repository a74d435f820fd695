//! Reader for page-allocator traces (`pagealloc-trace v1`, described in
//! `crates/pagealloc/tests/traces/TRACE-FORMAT.md`).
//!
//! A trace is parsed once, whole, into a [`Trace`]: its geometry and a list
//! of [`Op`]s, each remembering the line it came from so that a replay can
//! point at the first line that disagrees. Addresses stay chunk-relative
//! ([`PageRef`]) until the replayer picks a base chunk; [`Trace::pick_base`]
//! chooses one and [`Trace::resolve`] turns a reference into a byte address.
//! [`Op`]'s `Display` writes the line back in its canonical form, which is how
//! mismatches quote the expectation.

use pageheap_alloc::ScavengePolicy;
use std::fmt;
use std::path::{Path, PathBuf};

/// The first line of every trace.
pub const HEADER: &str = "pagealloc-trace v1";

/// Pages of a page-cache block (bits of the masks in a `cache` line).
pub const CACHE_PAGES: usize = 64;

/// Words of a chunk bitmap in a `chunk` line (512 pages a chunk).
pub const CHUNK_WORDS: usize = 8;

/// Errors from reading a trace.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TraceError {
    /// The file could not be read.
    #[error("cannot read trace {}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// A line does not follow the format.
    #[error("line {line}: {kind}")]
    Parse {
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        kind: ParseErrorKind,
    },
    /// The trace uses more address space than its geometry has above any
    /// base chunk.
    #[error("the trace uses chunks up to {max_chunk}, more than a {bits}-bit heap holds")]
    TooLarge {
        /// The highest chunk number used.
        max_chunk: usize,
        /// The geometry's heap address bits.
        bits: u32,
    },
}

/// What is wrong with a trace line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseErrorKind {
    /// The file does not start with [`HEADER`].
    #[error("expected the header `{HEADER}`")]
    BadHeader,
    /// An operation came before the `geometry` line, or there is none.
    #[error("missing `geometry` line before the first operation")]
    MissingGeometry,
    /// A second `geometry` line.
    #[error("duplicate `geometry` line")]
    DuplicateGeometry,
    /// A `geometry` key is missing, unknown or repeated.
    #[error("bad geometry field `{0}`")]
    BadGeometryField(String),
    /// A `policy` line names no known policy.
    #[error("unknown policy `{0}`")]
    BadPolicy(String),
    /// A `policy` line after the `geometry` line, or a second one.
    #[error("`policy` must come once, before the `geometry` line")]
    LatePolicy,
    /// A `setup` line after a line that is not `setup`.
    #[error("`setup` after other operations")]
    LateSetup,
    /// The first word is not an operation.
    #[error("unknown operation `{0}`")]
    UnknownOp(String),
    /// A field is missing.
    #[error("missing field: expected {0}")]
    Missing(&'static str),
    /// A field is not what the format puts there.
    #[error("expected {expected}, found `{found}`")]
    Unexpected {
        /// What should be there.
        expected: &'static str,
        /// What is there.
        found: String,
    },
    /// Words left over at the end of the line.
    #[error("trailing field `{0}`")]
    Trailing(String),
    /// A page index, range or chunk number is out of bounds.
    #[error("{0} out of range")]
    OutOfRange(&'static str),
}

/// The geometry a trace was produced with (its `geometry` line), and the
/// scavenging policy it pins (its `policy` line).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TraceGeometry {
    /// The scavenging policy: go119 unless a `policy` line says otherwise.
    /// Not part of the `geometry` line's text.
    pub policy: ScavengePolicy,
    /// Bytes of a page.
    pub page_bytes: usize,
    /// Pages of a chunk.
    pub chunk_pages: usize,
    /// Bits of the heap address space.
    pub heap_addr_bits: u32,
    /// Bytes of an OS page.
    pub phys_page_bytes: usize,
    /// Bytes of a transparent huge page (0: none).
    pub huge_page_bytes: usize,
}

impl TraceGeometry {
    /// The geometry of every trace recorded so far: Go 1.19 on 64-bit Linux
    /// with 4 KiB OS pages and 2 MiB huge pages.
    pub const GO64_LINUX: TraceGeometry = TraceGeometry {
        policy: ScavengePolicy::Go119,
        page_bytes: 8192,
        chunk_pages: 512,
        heap_addr_bits: 48,
        phys_page_bytes: 4096,
        huge_page_bytes: 2 << 20,
    };

    /// Bytes of a chunk.
    pub fn chunk_bytes(&self) -> usize {
        self.page_bytes * self.chunk_pages
    }

    /// The same geometry under `policy`.
    #[must_use]
    pub fn with_policy(mut self, policy: ScavengePolicy) -> Self {
        self.policy = policy;
        self
    }
}

/// A policy's name in a `policy` line.
pub fn policy_name(p: ScavengePolicy) -> &'static str {
    match p {
        ScavengePolicy::Go119 => "go119",
        _ => "go127",
    }
}

impl fmt::Display for TraceGeometry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "geometry page_bytes={} chunk_pages={} heap_addr_bits={} phys_page_bytes={} huge_page_bytes={}",
            self.page_bytes,
            self.chunk_pages,
            self.heap_addr_bits,
            self.phys_page_bytes,
            self.huge_page_bytes
        )
    }
}

/// A chunk-relative page address `C.P`: page `page` of chunk `B + chunk`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PageRef {
    /// Chunk number relative to the base chunk.
    pub chunk: usize,
    /// Page index inside the chunk.
    pub page: usize,
}

impl fmt::Display for PageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.chunk, self.page)
    }
}

/// A range of pages `I:N` inside one chunk (a `setup` line's bit range).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BitRange {
    /// First page.
    pub start: usize,
    /// Number of pages.
    pub len: usize,
}

/// The expected result of `alloc` and `calloc`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AllocExpect {
    /// No room.
    Fail,
    /// Allocated at `at`; `scav_bytes` of it had been scavenged.
    At {
        /// First page.
        at: PageRef,
        /// Scavenged bytes among the allocated pages.
        scav_bytes: usize,
    },
}

/// The expected result of `cache`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CacheExpect {
    /// No free page anywhere.
    Empty,
    /// The block at `base` with these masks (bit i = page i of the block).
    Block {
        /// First page of the 64-page block.
        base: PageRef,
        /// Pages handed to the cache.
        free: u64,
        /// Pages among them that were scavenged.
        scav: u64,
    },
}

/// One operation or check, with the expectation the trace records for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OpKind {
    /// `setup C alloc R scav R`.
    Setup {
        /// The chunk.
        chunk: usize,
        /// Allocated ranges.
        alloc: Vec<BitRange>,
        /// Scavenged ranges (set before `alloc` clears its own).
        scav: Vec<BitRange>,
    },
    /// `grow C N`.
    Grow {
        /// First chunk.
        chunk: usize,
        /// Number of chunks.
        count: usize,
    },
    /// `alloc N -> ...`.
    Alloc {
        /// Pages.
        npages: usize,
        /// Result.
        expect: AllocExpect,
    },
    /// `free C.P N`.
    Free {
        /// First page.
        at: PageRef,
        /// Pages.
        npages: usize,
    },
    /// `cache -> ...`.
    Cache {
        /// Result.
        expect: CacheExpect,
    },
    /// `calloc N -> ...`.
    CacheAlloc {
        /// Pages.
        npages: usize,
        /// Result.
        expect: AllocExpect,
    },
    /// `flush`.
    Flush,
    /// `scavenge B -> R`: a forced scavenge.
    Scavenge {
        /// Bytes asked for.
        bytes: usize,
        /// Bytes released.
        released: usize,
    },
    /// `bgscavenge B -> R`: an unforced scavenge (go127).
    BgScavenge {
        /// Bytes asked for.
        bytes: usize,
        /// Bytes released.
        released: usize,
    },
    /// `pad C.P N` (go127).
    Pad {
        /// First page.
        at: PageRef,
        /// Pages.
        npages: usize,
    },
    /// `nextgen` (go127).
    NextGen,
    /// `scavstate gen G hwm X bg Y force Z`: a check of the go127 index's
    /// global state.
    ScavState(ScavState),
    /// `scavidx C inuse N last L free F`: a check of one chunk's go127
    /// index entry.
    ScavIdx {
        /// The chunk.
        chunk: usize,
        /// Pages in use.
        inuse: usize,
        /// Pages in use when the generation began.
        last: usize,
        /// The `free` flag.
        free: bool,
    },
    /// `inuse -> A:Z ...`: a check of the in-use chunk ranges `[A, Z)`.
    InUse {
        /// Chunk ranges, ascending.
        ranges: Vec<(usize, usize)>,
    },
    /// `chunk C alloc W.. scav W..`: a check of one chunk's bitmaps.
    Chunk {
        /// The chunk.
        chunk: usize,
        /// Allocation bitmap words.
        alloc: [u64; CHUNK_WORDS],
        /// Scavenged bitmap words.
        scav: [u64; CHUNK_WORDS],
    },
}

impl OpKind {
    /// Whether this line is an operation (counted by benchmarks) rather than
    /// a check (`inuse`, `chunk`).
    pub fn is_operation(&self) -> bool {
        !matches!(
            self,
            OpKind::InUse { .. }
                | OpKind::Chunk { .. }
                | OpKind::ScavState(_)
                | OpKind::ScavIdx { .. }
        )
    }
}

/// The go127 index's global state as a `scavstate` line writes it; a
/// cursor is a page and whether it is marked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ScavState {
    /// The generation.
    pub gen: u64,
    /// The free high-water mark.
    pub hwm: Option<PageRef>,
    /// The background cursor.
    pub bg: Option<(PageRef, bool)>,
    /// The forced cursor.
    pub force: Option<(PageRef, bool)>,
}

impl fmt::Display for ScavState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let page = |p: Option<PageRef>| p.map_or("-".to_owned(), |p| p.to_string());
        let cursor = |c: Option<(PageRef, bool)>| {
            c.map_or("-".to_owned(), |(p, m)| {
                format!("{p}{}", if m { "*" } else { "" })
            })
        };
        write!(
            f,
            "scavstate gen {} hwm {} bg {} force {}",
            self.gen,
            page(self.hwm),
            cursor(self.bg),
            cursor(self.force)
        )
    }
}

/// One trace line after the header and geometry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Op {
    /// 1-based line number in the file.
    pub line: usize,
    /// What the line says.
    pub kind: OpKind,
}

/// A parsed trace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Trace {
    /// The geometry line's values.
    pub geometry: TraceGeometry,
    /// 1-based line number of the geometry line.
    pub geometry_line: usize,
    /// Every operation and check, in order.
    pub ops: Vec<Op>,
}

impl Trace {
    /// Reads and parses a trace file.
    ///
    /// # Errors
    /// [`TraceError::Io`] if the file cannot be read, [`TraceError::Parse`]
    /// for the first line that does not follow the format.
    pub fn read(path: &Path) -> Result<Trace, TraceError> {
        let text = std::fs::read_to_string(path).map_err(|source| TraceError::Io {
            path: path.to_owned(),
            source,
        })?;
        Trace::parse(&text)
    }

    /// Parses a trace from its text.
    ///
    /// # Errors
    /// [`TraceError::Parse`] for the first line that does not follow the
    /// format.
    pub fn parse(text: &str) -> Result<Trace, TraceError> {
        let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l));
        match lines.next() {
            Some((_, l)) if l.trim_end() == HEADER => {}
            _ => return Err(parse_error(1, ParseErrorKind::BadHeader)),
        }
        let mut geometry = None;
        let mut policy = None;
        let mut ops: Vec<Op> = Vec::new();
        let mut last_line = 1;
        for (line, text) in lines {
            last_line = line;
            let text = text.trim_end();
            if text.is_empty() || text.starts_with('#') {
                continue;
            }
            let mut words = Words {
                it: text.split(' '),
            };
            let first = words.it.next().unwrap_or_default();
            if first == "policy" {
                if geometry.is_some() || policy.is_some() {
                    return Err(parse_error(line, ParseErrorKind::LatePolicy));
                }
                let name = words.it.next().unwrap_or_default();
                policy = Some(match name {
                    "go119" => ScavengePolicy::Go119,
                    "go127" => ScavengePolicy::Go127,
                    _ => {
                        return Err(parse_error(
                            line,
                            ParseErrorKind::BadPolicy(name.to_owned()),
                        ))
                    }
                });
                if let Some(w) = words.it.next() {
                    return Err(parse_error(line, ParseErrorKind::Trailing(w.to_owned())));
                }
                continue;
            }
            if first == "geometry" {
                if geometry.is_some() {
                    return Err(parse_error(line, ParseErrorKind::DuplicateGeometry));
                }
                let g = parse_geometry(&mut words).map_err(|k| parse_error(line, k))?;
                let g = g.with_policy(policy.unwrap_or(ScavengePolicy::Go119));
                geometry = Some((g, line));
                continue;
            }
            let Some((g, _)) = geometry else {
                return Err(parse_error(line, ParseErrorKind::MissingGeometry));
            };
            let kind = parse_op(first, &mut words, &g).map_err(|k| parse_error(line, k))?;
            if let Some(w) = words.it.next() {
                return Err(parse_error(line, ParseErrorKind::Trailing(w.to_owned())));
            }
            if matches!(kind, OpKind::Setup { .. })
                && ops.iter().any(|o| !matches!(o.kind, OpKind::Setup { .. }))
            {
                return Err(parse_error(line, ParseErrorKind::LateSetup));
            }
            ops.push(Op { line, kind });
        }
        let Some((geometry, geometry_line)) = geometry else {
            return Err(parse_error(last_line, ParseErrorKind::MissingGeometry));
        };
        Ok(Trace {
            geometry,
            geometry_line,
            ops,
        })
    }

    /// The highest chunk number any line names (0 for an empty trace).
    pub fn max_chunk(&self) -> usize {
        self.ops
            .iter()
            .map(|op| match &op.kind {
                OpKind::Setup { chunk, .. } | OpKind::Chunk { chunk, .. } => *chunk,
                OpKind::Grow { chunk, count } => (chunk + count).saturating_sub(1),
                OpKind::Alloc {
                    expect: AllocExpect::At { at, .. },
                    ..
                }
                | OpKind::CacheAlloc {
                    expect: AllocExpect::At { at, .. },
                    ..
                }
                | OpKind::Cache {
                    expect: CacheExpect::Block { base: at, .. },
                }
                | OpKind::Free { at, .. }
                | OpKind::Pad { at, .. } => at.chunk,
                OpKind::ScavIdx { chunk, .. } => *chunk,
                OpKind::ScavState(s) => [s.hwm, s.bg.map(|c| c.0), s.force.map(|c| c.0)]
                    .into_iter()
                    .flatten()
                    .map(|p| p.chunk)
                    .max()
                    .unwrap_or(0),
                OpKind::InUse { ranges } => ranges.iter().map(|r| r.1).max().unwrap_or(0),
                _ => 0,
            })
            .max()
            .unwrap_or(0)
    }

    /// A base chunk address for this trace: chunk-aligned, inside the
    /// geometry's heap address range, never chunk 0, with room above it for
    /// [`Trace::max_chunk`]. Prefers `3 << (heap_addr_bits - 10)`
    /// (`0xc0_0000_0000` for 48 bits), a typical heap address.
    ///
    /// # Errors
    /// [`TraceError::TooLarge`] if the trace's chunks do not fit.
    pub fn pick_base(&self) -> Result<usize, TraceError> {
        let g = &self.geometry;
        let chunk_bytes = g.chunk_bytes();
        let span = self
            .max_chunk()
            .checked_add(1)
            .and_then(|n| n.checked_mul(chunk_bytes));
        let limit = 1usize.checked_shl(g.heap_addr_bits).unwrap_or(usize::MAX);
        let preferred = (3usize << g.heap_addr_bits.saturating_sub(10)) / chunk_bytes * chunk_bytes;
        let fits = |b: usize| {
            span.and_then(|s| b.checked_add(s))
                .is_some_and(|end| end <= limit)
        };
        [preferred, chunk_bytes]
            .into_iter()
            .find(|&b| b != 0 && fits(b))
            .ok_or(TraceError::TooLarge {
                max_chunk: self.max_chunk(),
                bits: g.heap_addr_bits,
            })
    }

    /// The byte address of `r` for base chunk address `base`.
    pub fn resolve(&self, base: usize, r: PageRef) -> usize {
        base + r.chunk * self.geometry.chunk_bytes() + r.page * self.geometry.page_bytes
    }

    /// The byte address of chunk `chunk` for base chunk address `base`.
    pub fn chunk_addr(&self, base: usize, chunk: usize) -> usize {
        base + chunk * self.geometry.chunk_bytes()
    }

    /// How many lines are operations (see [`OpKind::is_operation`]).
    pub fn operation_count(&self) -> usize {
        self.ops.iter().filter(|o| o.kind.is_operation()).count()
    }
}

impl fmt::Display for BitRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.start, self.len)
    }
}

impl fmt::Display for AllocExpect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AllocExpect::Fail => f.write_str("fail"),
            AllocExpect::At { at, scav_bytes } => write!(f, "{at} {scav_bytes}"),
        }
    }
}

impl fmt::Display for CacheExpect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CacheExpect::Empty => f.write_str("empty"),
            CacheExpect::Block { base, free, scav } => write!(f, "{base} {free:016x} {scav:016x}"),
        }
    }
}

/// Writes `R` of a `setup` line.
fn write_ranges(f: &mut fmt::Formatter<'_>, rs: &[BitRange]) -> fmt::Result {
    if rs.is_empty() {
        return f.write_str("-");
    }
    for (i, r) in rs.iter().enumerate() {
        if i > 0 {
            f.write_str(",")?;
        }
        write!(f, "{r}")?;
    }
    Ok(())
}

impl fmt::Display for OpKind {
    /// The line in its canonical form, as the oracle writes it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OpKind::Setup { chunk, alloc, scav } => {
                write!(f, "setup {chunk} alloc ")?;
                write_ranges(f, alloc)?;
                f.write_str(" scav ")?;
                write_ranges(f, scav)
            }
            OpKind::Grow { chunk, count } => write!(f, "grow {chunk} {count}"),
            OpKind::Alloc { npages, expect } => write!(f, "alloc {npages} -> {expect}"),
            OpKind::Free { at, npages } => write!(f, "free {at} {npages}"),
            OpKind::Cache { expect } => write!(f, "cache -> {expect}"),
            OpKind::CacheAlloc { npages, expect } => write!(f, "calloc {npages} -> {expect}"),
            OpKind::Flush => f.write_str("flush"),
            OpKind::Scavenge { bytes, released } => write!(f, "scavenge {bytes} -> {released}"),
            OpKind::BgScavenge { bytes, released } => {
                write!(f, "bgscavenge {bytes} -> {released}")
            }
            OpKind::Pad { at, npages } => write!(f, "pad {at} {npages}"),
            OpKind::NextGen => f.write_str("nextgen"),
            OpKind::ScavState(s) => s.fmt(f),
            OpKind::ScavIdx {
                chunk,
                inuse,
                last,
                free,
            } => write!(
                f,
                "scavidx {chunk} inuse {inuse} last {last} free {}",
                u8::from(*free)
            ),
            OpKind::InUse { ranges } => {
                f.write_str("inuse ->")?;
                for (a, z) in ranges {
                    write!(f, " {a}:{z}")?;
                }
                Ok(())
            }
            OpKind::Chunk { chunk, alloc, scav } => {
                write!(f, "chunk {chunk} alloc")?;
                for w in alloc {
                    write!(f, " {w:016x}")?;
                }
                f.write_str(" scav")?;
                for w in scav {
                    write!(f, " {w:016x}")?;
                }
                Ok(())
            }
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.kind.fmt(f)
    }
}

fn parse_error(line: usize, kind: ParseErrorKind) -> TraceError {
    TraceError::Parse { line, kind }
}

/// The space-separated fields of one line.
struct Words<'a> {
    it: std::str::Split<'a, char>,
}

impl<'a> Words<'a> {
    fn next(&mut self, what: &'static str) -> Result<&'a str, ParseErrorKind> {
        self.it.next().ok_or(ParseErrorKind::Missing(what))
    }

    fn keyword(&mut self, word: &'static str) -> Result<(), ParseErrorKind> {
        let w = self.next(word)?;
        if w == word {
            Ok(())
        } else {
            Err(unexpected(word, w))
        }
    }

    fn decimal(&mut self, what: &'static str) -> Result<usize, ParseErrorKind> {
        decimal(self.next(what)?, what)
    }
}

fn unexpected(expected: &'static str, found: &str) -> ParseErrorKind {
    ParseErrorKind::Unexpected {
        expected,
        found: found.to_owned(),
    }
}

fn decimal(s: &str, what: &'static str) -> Result<usize, ParseErrorKind> {
    // `parse` accepts a leading `+`; the format does not.
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(unexpected(what, s));
    }
    s.parse().map_err(|_| ParseErrorKind::OutOfRange(what))
}

fn hex64(s: &str, what: &'static str) -> Result<u64, ParseErrorKind> {
    if s.is_empty() || s.len() > 16 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(unexpected(what, s));
    }
    u64::from_str_radix(s, 16).map_err(|_| unexpected(what, s))
}

fn parse_geometry(words: &mut Words<'_>) -> Result<TraceGeometry, ParseErrorKind> {
    let mut vals: [Option<usize>; 5] = [None; 5];
    const KEYS: [&str; 5] = [
        "page_bytes",
        "chunk_pages",
        "heap_addr_bits",
        "phys_page_bytes",
        "huge_page_bytes",
    ];
    for w in words.it.by_ref() {
        let (k, v) = w
            .split_once('=')
            .ok_or_else(|| ParseErrorKind::BadGeometryField(w.to_owned()))?;
        let i = KEYS
            .iter()
            .position(|&key| key == k)
            .ok_or_else(|| ParseErrorKind::BadGeometryField(k.to_owned()))?;
        if vals[i].is_some() {
            return Err(ParseErrorKind::BadGeometryField(k.to_owned()));
        }
        vals[i] = Some(decimal(v, KEYS[i])?);
    }
    let get =
        |i: usize| vals[i].ok_or_else(|| ParseErrorKind::BadGeometryField(KEYS[i].to_owned()));
    let g = TraceGeometry {
        policy: ScavengePolicy::Go119,
        page_bytes: get(0)?,
        chunk_pages: get(1)?,
        heap_addr_bits: u32::try_from(get(2)?).map_err(|_| ParseErrorKind::OutOfRange(KEYS[2]))?,
        phys_page_bytes: get(3)?,
        huge_page_bytes: get(4)?,
    };
    if !g.page_bytes.is_power_of_two() {
        return Err(ParseErrorKind::OutOfRange(KEYS[0]));
    }
    // Bitmap lines carry exactly eight 64-bit words.
    if g.chunk_pages != CHUNK_WORDS * 64 {
        return Err(ParseErrorKind::OutOfRange(KEYS[1]));
    }
    if !(g.heap_addr_bits > 22 && g.heap_addr_bits <= usize::BITS) {
        return Err(ParseErrorKind::OutOfRange(KEYS[2]));
    }
    if g.chunk_bytes() >> g.heap_addr_bits != 0 {
        return Err(ParseErrorKind::OutOfRange(KEYS[2]));
    }
    Ok(g)
}

/// `-`, `C.P` or `C.P*` (marked).
fn parse_cursor(s: &str, g: &TraceGeometry) -> Result<Option<(PageRef, bool)>, ParseErrorKind> {
    if s == "-" {
        return Ok(None);
    }
    let (p, marked) = match s.strip_suffix('*') {
        Some(p) => (p, true),
        None => (s, false),
    };
    Ok(Some((parse_page_ref(p, g)?, marked)))
}

fn parse_page_ref(s: &str, g: &TraceGeometry) -> Result<PageRef, ParseErrorKind> {
    let (c, p) = s.split_once('.').ok_or_else(|| unexpected("C.P", s))?;
    let page = decimal(p, "page index")?;
    if page >= g.chunk_pages {
        return Err(ParseErrorKind::OutOfRange("page index"));
    }
    Ok(PageRef {
        chunk: decimal(c, "chunk number")?,
        page,
    })
}

fn parse_ranges(s: &str, g: &TraceGeometry) -> Result<Vec<BitRange>, ParseErrorKind> {
    if s == "-" {
        return Ok(Vec::new());
    }
    s.split(',')
        .map(|part| {
            let (i, n) = part
                .split_once(':')
                .ok_or_else(|| unexpected("I:N", part))?;
            let r = BitRange {
                start: decimal(i, "range start")?,
                len: decimal(n, "range length")?,
            };
            match r.start.checked_add(r.len) {
                Some(end) if end <= g.chunk_pages => Ok(r),
                _ => Err(ParseErrorKind::OutOfRange("bit range")),
            }
        })
        .collect()
}

fn parse_alloc_expect(
    words: &mut Words<'_>,
    g: &TraceGeometry,
) -> Result<AllocExpect, ParseErrorKind> {
    words.keyword("->")?;
    let w = words.next("result")?;
    if w == "fail" {
        return Ok(AllocExpect::Fail);
    }
    Ok(AllocExpect::At {
        at: parse_page_ref(w, g)?,
        scav_bytes: words.decimal("scavenged bytes")?,
    })
}

fn parse_words(words: &mut Words<'_>) -> Result<[u64; CHUNK_WORDS], ParseErrorKind> {
    let mut out = [0; CHUNK_WORDS];
    for w in &mut out {
        *w = hex64(words.next("bitmap word")?, "bitmap word")?;
    }
    Ok(out)
}

fn parse_op(
    first: &str,
    words: &mut Words<'_>,
    g: &TraceGeometry,
) -> Result<OpKind, ParseErrorKind> {
    Ok(match first {
        "setup" => {
            let chunk = words.decimal("chunk number")?;
            words.keyword("alloc")?;
            let alloc = parse_ranges(words.next("ranges")?, g)?;
            words.keyword("scav")?;
            let scav = parse_ranges(words.next("ranges")?, g)?;
            OpKind::Setup { chunk, alloc, scav }
        }
        "grow" => OpKind::Grow {
            chunk: words.decimal("chunk number")?,
            count: words.decimal("chunk count")?,
        },
        "alloc" => OpKind::Alloc {
            npages: words.decimal("page count")?,
            expect: parse_alloc_expect(words, g)?,
        },
        "calloc" => OpKind::CacheAlloc {
            npages: words.decimal("page count")?,
            expect: parse_alloc_expect(words, g)?,
        },
        "free" => OpKind::Free {
            at: parse_page_ref(words.next("C.P")?, g)?,
            npages: words.decimal("page count")?,
        },
        "cache" => {
            words.keyword("->")?;
            let w = words.next("result")?;
            let expect = if w == "empty" {
                CacheExpect::Empty
            } else {
                let base = parse_page_ref(w, g)?;
                if base.page % CACHE_PAGES != 0 {
                    return Err(unexpected("a 64-page aligned block", w));
                }
                CacheExpect::Block {
                    base,
                    free: hex64(words.next("free mask")?, "free mask")?,
                    scav: hex64(words.next("scavenged mask")?, "scavenged mask")?,
                }
            };
            OpKind::Cache { expect }
        }
        "flush" => OpKind::Flush,
        "scavenge" | "bgscavenge" => {
            let bytes = words.decimal("byte count")?;
            words.keyword("->")?;
            let released = words.decimal("released bytes")?;
            if first == "scavenge" {
                OpKind::Scavenge { bytes, released }
            } else {
                OpKind::BgScavenge { bytes, released }
            }
        }
        "pad" => OpKind::Pad {
            at: parse_page_ref(words.next("C.P")?, g)?,
            npages: words.decimal("page count")?,
        },
        "nextgen" => OpKind::NextGen,
        "scavstate" => {
            words.keyword("gen")?;
            let gen = words.decimal("generation")? as u64;
            words.keyword("hwm")?;
            let hwm = match parse_cursor(words.next("page")?, g)? {
                None => None,
                Some((p, false)) => Some(p),
                Some((_, true)) => return Err(unexpected("an unmarked page", "*")),
            };
            words.keyword("bg")?;
            let bg = parse_cursor(words.next("cursor")?, g)?;
            words.keyword("force")?;
            let force = parse_cursor(words.next("cursor")?, g)?;
            OpKind::ScavState(ScavState {
                gen,
                hwm,
                bg,
                force,
            })
        }
        "scavidx" => {
            let chunk = words.decimal("chunk number")?;
            words.keyword("inuse")?;
            let inuse = words.decimal("page count")?;
            words.keyword("last")?;
            let last = words.decimal("page count")?;
            words.keyword("free")?;
            let free = match words.next("flag")? {
                "0" => false,
                "1" => true,
                w => return Err(unexpected("0 or 1", w)),
            };
            if inuse > g.chunk_pages || last > g.chunk_pages {
                return Err(ParseErrorKind::OutOfRange("page count"));
            }
            OpKind::ScavIdx {
                chunk,
                inuse,
                last,
                free,
            }
        }
        "inuse" => {
            words.keyword("->")?;
            let mut ranges = Vec::new();
            for w in words.it.by_ref() {
                let (a, z) = w.split_once(':').ok_or_else(|| unexpected("A:Z", w))?;
                let r = (decimal(a, "chunk number")?, decimal(z, "chunk number")?);
                if r.0 >= r.1 {
                    return Err(ParseErrorKind::OutOfRange("chunk range"));
                }
                ranges.push(r);
            }
            OpKind::InUse { ranges }
        }
        "chunk" => {
            let chunk = words.decimal("chunk number")?;
            words.keyword("alloc")?;
            let alloc = parse_words(words)?;
            words.keyword("scav")?;
            let scav = parse_words(words)?;
            OpKind::Chunk { chunk, alloc, scav }
        }
        other => return Err(ParseErrorKind::UnknownOp(other.to_owned())),
    })
}
