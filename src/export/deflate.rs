//! A file's deflate stream made of independently compressed pieces (as pigz does), so a
//! file whose bytes are produced a page at a time on several threads can be compressed
//! where they are produced, in parallel, and the pieces joined in order.
//!
//! Each piece is compressed from an empty history and ends with a sync flush (an empty,
//! non-final stored block, which leaves the stream byte-aligned); the file's last piece ends
//! with a final block. Joined, they are one valid deflate stream. The CRC-32 of the whole is
//! combined from the pieces'. [`single_entry_zip`] puts such a stream in a zip of one entry,
//! which the bundle copies as it is.

use std::io::{Read, Seek, SeekFrom, Write};

use sha2::{Digest, Sha256};

use flate2::{Compress, Compression, FlushCompress, Status};

/// The level every piece is compressed at: populations are large and repetitive, and level 1
/// compresses them nearly as well as 6 at several times the speed.
pub(super) const LEVEL: u32 = 1;

/// A compressor for pieces (raw deflate, no zlib header). Keep one per thread: setting one up
/// costs far more than compressing a small piece.
pub(super) fn compressor() -> Compress {
    Compress::new(Compression::new(LEVEL), false)
}

/// Compresses `input` as a (not last) piece with this thread's compressor.
pub(super) fn piece_here(input: &[u8]) -> Result<Piece, std::io::Error> {
    thread_local! {
        static COMPRESS: std::cell::RefCell<Compress> = std::cell::RefCell::new(compressor());
    }
    COMPRESS.with_borrow_mut(|compress| piece(compress, input, false))
}

/// A piece of a file: its bytes deflated, and their CRC-32 and length.
#[derive(Clone)]
pub(super) struct Piece {
    pub deflated: Vec<u8>,
    pub crc: crc32fast::Hasher,
}

/// Compresses `input` as a piece (`last`: the file's final piece, ending the stream).
pub(super) fn piece(
    compress: &mut Compress,
    input: &[u8],
    last: bool,
) -> Result<Piece, std::io::Error> {
    let mut crc = crc32fast::Hasher::new();
    crc.update(input);
    compress.reset();
    let flush = if last {
        FlushCompress::Finish
    } else {
        FlushCompress::Sync
    };
    // Repetitive rows deflate to a fraction of their size; the buffer grows if not.
    let mut out = Vec::with_capacity(input.len() / 4 + 64);
    let start = compress.total_in();
    loop {
        if out.len() == out.capacity() {
            out.reserve(out.capacity());
        }
        let (was_in, was_out) = (compress.total_in(), compress.total_out());
        let consumed = (was_in - start) as usize;
        let status = compress
            .compress_vec(&input[consumed..], &mut out, flush)
            .map_err(std::io::Error::other)?;
        let all_in = (compress.total_in() - start) as usize == input.len();
        // As zlib: a flush is complete when it returns with room left in the output.
        let room = out.len() < out.capacity();
        match status {
            Status::StreamEnd => break,
            _ if !last && all_in && room => break,
            _ if room && compress.total_in() == was_in && compress.total_out() == was_out => {
                return Err(std::io::Error::other("deflate made no progress"));
            }
            _ => {}
        }
    }
    Ok(Piece { deflated: out, crc })
}

/// Spooled compressed bytes of a member not yet written out are flushed at this size.
const CHUNK: usize = 16 * 1024;

/// A temporary file holding the compressed pieces of several files (members), and a
/// compressor for the pieces made on the thread that owns it.
pub(super) struct Spool {
    file: std::fs::File,
    len: u64,
    compress: Compress,
}

/// A file being built from pieces, in order: its SHA-256, CRC-32 and size kept as its bytes
/// go by, its compressed bytes spooled.
pub(super) struct Member {
    /// Bytes counted in `sha` and `size` but not compressed yet; they go with the next piece.
    head: Vec<u8>,
    sha: Sha256,
    crc: crc32fast::Hasher,
    size: u64,
    /// Compressed bytes not in the spool file yet.
    pending: Vec<u8>,
    /// Where the compressed bytes are in the spool file.
    chunks: Vec<(u64, usize)>,
    deflated: u64,
}

/// A finished member: what the bundle's manifest lists, and its compressed bytes' places.
pub(super) struct Done {
    pub sha256: String,
    pub crc32: u32,
    pub size: u64,
    pub deflated: u64,
    chunks: Vec<(u64, usize)>,
}

impl Spool {
    pub fn new() -> std::io::Result<Self> {
        Ok(Spool {
            file: tempfile::tempfile()?,
            len: 0,
            compress: compressor(),
        })
    }

    fn spill(&mut self, m: &mut Member) -> std::io::Result<()> {
        if m.pending.is_empty() {
            return Ok(());
        }
        self.file.write_all(&m.pending)?;
        m.chunks.push((self.len, m.pending.len()));
        self.len += m.pending.len() as u64;
        m.pending.clear();
        Ok(())
    }

    /// Writes a finished member into `zip` as the entry `path` (copied as it is, through a
    /// zip of one entry), with the bundle's `time`.
    pub fn write_entry<W: Write + Seek>(
        &mut self,
        zip: &mut zip::ZipWriter<W>,
        path: &str,
        time: zip::DateTime,
        done: &Done,
    ) -> Result<(), super::ExportError> {
        let mut one = std::io::BufWriter::new(tempfile::tempfile()?);
        single_entry_zip(
            &mut one,
            path,
            time,
            done.crc32,
            done.deflated,
            done.size,
            |w| {
                let mut buf = Vec::new();
                for &(offset, len) in &done.chunks {
                    buf.resize(len, 0);
                    self.file.seek(SeekFrom::Start(offset))?;
                    self.file.read_exact(&mut buf)?;
                    w.write_all(&buf)?;
                }
                Ok(())
            },
        )?;
        let one = one
            .into_inner()
            .map_err(|e| super::ExportError::Io(e.into_error()))?;
        let mut archive = zip::ZipArchive::new(one)?;
        zip.raw_copy_file(archive.by_index_raw(0)?)?;
        Ok(())
    }
}

impl Member {
    pub fn new() -> Self {
        Member {
            head: Vec::new(),
            sha: Sha256::new(),
            crc: crc32fast::Hasher::new(),
            size: 0,
            pending: Vec::new(),
            chunks: Vec::new(),
            deflated: 0,
        }
    }

    /// Appends bytes that are compressed with the next piece.
    pub fn prefix(&mut self, bytes: &[u8]) {
        self.sha.update(bytes);
        self.size += bytes.len() as u64;
        self.head.extend_from_slice(bytes);
    }

    /// Appends `raw`; `piece` is `raw` compressed, if it was (made again here if the member
    /// has a prefix waiting).
    pub fn add(
        &mut self,
        spool: &mut Spool,
        raw: &[u8],
        piece: Option<Piece>,
    ) -> std::io::Result<()> {
        self.sha.update(raw);
        self.size += raw.len() as u64;
        let piece = match piece {
            Some(piece) if self.head.is_empty() => piece,
            _ => {
                let mut bytes = std::mem::take(&mut self.head);
                bytes.extend_from_slice(raw);
                self::piece(&mut spool.compress, &bytes, false)?
            }
        };
        self.append(spool, piece)
    }

    fn append(&mut self, spool: &mut Spool, piece: Piece) -> std::io::Result<()> {
        self.crc.combine(&piece.crc);
        self.deflated += piece.deflated.len() as u64;
        self.pending.extend_from_slice(&piece.deflated);
        if self.pending.len() >= CHUNK {
            spool.spill(self)?;
        }
        Ok(())
    }

    /// Ends the member with `tail`, its last bytes.
    pub fn finish(mut self, spool: &mut Spool, tail: &[u8]) -> std::io::Result<Done> {
        self.prefix(tail);
        let bytes = std::mem::take(&mut self.head);
        let piece = piece(&mut spool.compress, &bytes, true)?;
        self.append(spool, piece)?;
        spool.spill(&mut self)?;
        Ok(Done {
            sha256: hex::encode(self.sha.finalize()),
            crc32: self.crc.finalize(),
            size: self.size,
            deflated: self.deflated,
            chunks: self.chunks,
        })
    }
}

/// A file as a zip of one entry: deflate (method 8) with this CRC-32 and these sizes, its data
/// written by `data`. The fields are the bundle's (`time`, mode 0644, made on Unix), so the
/// entry copied raw into the bundle is like any other of its entries.
pub(super) fn single_entry_zip(
    out: &mut impl Write,
    name: &str,
    time: zip::DateTime,
    crc32: u32,
    deflated: u64,
    size: u64,
    data: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let too_big = |what: &str| {
        std::io::Error::other(format!(
            "{name} is too large for a zip without Zip64 ({what} over 4 GiB)"
        ))
    };
    let deflated32 = u32::try_from(deflated)
        .ok()
        .filter(|n| *n != u32::MAX)
        .ok_or_else(|| too_big("compressed"))?;
    let size32 = u32::try_from(size)
        .ok()
        .filter(|n| *n != u32::MAX)
        .ok_or_else(|| too_big("uncompressed"))?;
    let name_len = u16::try_from(name.len()).map_err(|_| too_big("name"))?;
    // Bit 11: the name is UTF-8.
    let flags: u16 = if name.is_ascii() { 0 } else { 1 << 11 };
    let common = |h: &mut Vec<u8>| {
        h.extend_from_slice(&20u16.to_le_bytes()); // version needed: 2.0 (deflate)
        h.extend_from_slice(&flags.to_le_bytes());
        h.extend_from_slice(&8u16.to_le_bytes()); // deflate
        h.extend_from_slice(&time.timepart().to_le_bytes());
        h.extend_from_slice(&time.datepart().to_le_bytes());
        h.extend_from_slice(&crc32.to_le_bytes());
        h.extend_from_slice(&deflated32.to_le_bytes());
        h.extend_from_slice(&size32.to_le_bytes());
        h.extend_from_slice(&name_len.to_le_bytes());
        h.extend_from_slice(&0u16.to_le_bytes()); // extra field length
    };
    let mut local = Vec::with_capacity(30 + name.len());
    local.extend_from_slice(&0x0403_4b50u32.to_le_bytes());
    common(&mut local);
    local.extend_from_slice(name.as_bytes());
    out.write_all(&local)?;
    let mut counted = Counting {
        inner: &mut *out,
        n: 0,
    };
    data(&mut counted)?;
    if counted.n != deflated {
        return Err(std::io::Error::other(format!(
            "{name}: {} bytes of deflate data written, {deflated} announced",
            counted.n
        )));
    }
    let mut central = Vec::with_capacity(46 + name.len() + 22);
    central.extend_from_slice(&0x0201_4b50u32.to_le_bytes());
    central.extend_from_slice(&((3u16 << 8) | 20).to_le_bytes()); // made by: Unix, 2.0
    common(&mut central);
    central.extend_from_slice(&0u16.to_le_bytes()); // comment length
    central.extend_from_slice(&0u16.to_le_bytes()); // disk number
    central.extend_from_slice(&0u16.to_le_bytes()); // internal attributes
    central.extend_from_slice(&((0o100_644u32) << 16).to_le_bytes()); // a regular file, 0644
    central.extend_from_slice(&0u32.to_le_bytes()); // offset of the local header
    central.extend_from_slice(name.as_bytes());
    let central_len = central.len() as u32;
    let central_at = u32::try_from(local.len() as u64 + deflated)
        .ok()
        .filter(|n| *n != u32::MAX)
        .ok_or_else(|| too_big("compressed"))?;
    central.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
    central.extend_from_slice(&0u16.to_le_bytes()); // this disk
    central.extend_from_slice(&0u16.to_le_bytes()); // the central directory's disk
    central.extend_from_slice(&1u16.to_le_bytes()); // entries on this disk
    central.extend_from_slice(&1u16.to_le_bytes()); // entries
    central.extend_from_slice(&central_len.to_le_bytes());
    central.extend_from_slice(&central_at.to_le_bytes());
    central.extend_from_slice(&0u16.to_le_bytes()); // comment length
    out.write_all(&central)
}

struct Counting<W> {
    inner: W,
    n: u64,
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.n += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Cursor, Read};

    use super::*;

    fn text(n: usize, seed: u64) -> Vec<u8> {
        let mut x = seed;
        (0..n)
            .map(|i| {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                if i % 7 == 0 {
                    b"run-0001,pass,person E0001: background check on file\n"[i % 53]
                } else {
                    (x >> 59) as u8 + b'a'
                }
            })
            .collect()
    }

    /// Pieces compressed apart and joined are the stream of the whole, whatever the cuts,
    /// and the zip of one entry made from them reads back as the file, its CRC checked.
    #[test]
    fn pieces_join_into_one_stream_in_a_readable_zip() {
        let cases: Vec<Vec<Vec<u8>>> = vec![
            vec![],
            vec![b"".to_vec()],
            vec![b"a".to_vec()],
            vec![b"".to_vec(), b"".to_vec(), b"x".to_vec()],
            vec![text(70_000, 1), text(3, 2), Vec::new(), text(300_000, 3)],
            (0..50).map(|k| text(k * 97, k as u64)).collect(),
            vec![vec![b'z'; 1 << 20], vec![0u8; 5]],
        ];
        let mut compress = compressor();
        let time = zip::DateTime::from_date_and_time(2026, 12, 1, 0, 0, 0).unwrap();
        for (case, parts) in cases.iter().enumerate() {
            let mut pieces: Vec<Piece> = parts
                .iter()
                .map(|p| piece(&mut compress, p, false).unwrap())
                .collect();
            pieces.push(piece(&mut compress, b"\n]\n", true).unwrap());
            let mut whole: Vec<u8> = parts.concat();
            whole.extend_from_slice(b"\n]\n");
            let mut crc = crc32fast::Hasher::new();
            let mut deflated = Vec::new();
            for p in &pieces {
                crc.combine(&p.crc);
                deflated.extend_from_slice(&p.deflated);
            }
            let mut inflated = Vec::new();
            flate2::read::DeflateDecoder::new(&deflated[..])
                .read_to_end(&mut inflated)
                .unwrap();
            assert!(inflated == whole, "case {case}: the joined stream differs");

            let name = if case % 2 == 0 {
                "controls/a/population.csv"
            } else {
                "controls/ü/population.json"
            };
            let mut zip_bytes = Vec::new();
            single_entry_zip(
                &mut zip_bytes,
                name,
                time,
                crc.clone().finalize(),
                deflated.len() as u64,
                whole.len() as u64,
                |w| w.write_all(&deflated),
            )
            .unwrap();
            let mut archive = zip::ZipArchive::new(Cursor::new(zip_bytes)).unwrap();
            assert_eq!(archive.len(), 1);
            let mut f = archive.by_index(0).unwrap();
            assert_eq!(f.name(), name);
            assert_eq!(f.unix_mode(), Some(0o100_644));
            assert_eq!(f.compression(), zip::CompressionMethod::Deflated);
            assert_eq!(f.size(), whole.len() as u64);
            let t = f.last_modified().unwrap();
            assert_eq!((t.year(), t.month(), t.day()), (2026, 12, 1));
            let mut back = Vec::new();
            // Reading to the end checks the CRC.
            f.read_to_end(&mut back).unwrap();
            assert!(back == whole, "case {case}: the zip entry differs");
        }
    }

    #[test]
    fn announced_sizes_are_held_to() {
        let time = zip::DateTime::default();
        let err = single_entry_zip(&mut Vec::new(), "a", time, 0, 3, 0, |w| w.write_all(b"ab"))
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("2 bytes of deflate data written, 3 announced")
        );
        let err =
            single_entry_zip(&mut Vec::new(), "a", time, 0, 5 << 30, 0, |_| Ok(())).unwrap_err();
        assert!(err.to_string().contains("too large"), "{err}");
    }
}
