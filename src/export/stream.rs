//! A bundle sent as it is made (the dashboard's and the API's download): the export runs on
//! the blocking pool and writes into a [`ChunkWriter`], whose chunks go through a bounded
//! channel to whoever reads the [`Streaming`] (an HTTP response body). Nothing holds the
//! whole bundle; a slow reader slows the export down instead of filling memory.
//!
//! The bytes are those of [`super::export`] into a file (`trellis export`): the zip writer is
//! the same, given a `Write + Seek` that keeps what it may still change. It changes only one
//! thing after writing it: the CRC-32 and sizes in the local header of an entry it compresses
//! itself (`start_file`), when that entry is finished (it seeks back to the header, writes
//! them, and seeks to the end again). Such an entry's bytes are held until then; entries
//! copied from a finished zip (populations, attestations and evidence pages, OSCAL) have
//! their header complete and go out as they are written. A seek to bytes already sent is an
//! error, never a wrong bundle.
//!
//! A failed export sends no zip directory: what was sent before the failure is not a zip, and
//! the stream ends with the error (the HTTP response is aborted, not completed).

use std::io::{self, Seek, SeekFrom, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::mpsc;

use super::{ExportError, ExportRequest, ExportSummary};
use crate::catalog::Catalog;
use crate::integrity::Signer;
use crate::store::Store;

/// Bytes known final are sent once this many have gathered.
pub const CHUNK: usize = 64 * 1024;
/// Chunks in flight between the export and the reader.
const IN_FLIGHT: usize = 8;

/// What the bundle tells its writer: set while it writes an entry whose header the zip
/// writer will patch (`Bundle::start_patched`), cleared when it copies a finished entry
/// (`Bundle::raw`); and that the export failed ([`AbortUnlessDone`]).
#[derive(Clone, Default)]
pub(super) struct Hold(Arc<HoldState>);

#[derive(Default)]
struct HoldState {
    hold: AtomicBool,
    aborted: AtomicBool,
}

impl Hold {
    pub fn set(&self, hold: bool) {
        self.0.hold.store(hold, Ordering::Relaxed);
    }
    fn get(&self) -> bool {
        self.0.hold.load(Ordering::Relaxed)
    }
    fn aborted(&self) -> bool {
        self.0.aborted.load(Ordering::Relaxed)
    }
}

/// Marks a streamed export failed when dropped before [`AbortUnlessDone::done`]: a zip writer
/// dropped unfinished writes its directory (zip's `Drop`), which would make what was sent
/// look like a complete zip; once aborted, the writer sends nothing more. Declared after the
/// bundle, so dropped before it.
pub(super) struct AbortUnlessDone(Option<Hold>);

impl AbortUnlessDone {
    pub fn new(hold: Option<&Hold>) -> Self {
        AbortUnlessDone(hold.cloned())
    }
    pub fn done(mut self) {
        self.0 = None;
    }
}

impl Drop for AbortUnlessDone {
    fn drop(&mut self) {
        if let Some(h) = &self.0 {
            h.0.aborted.store(true, Ordering::Relaxed);
        }
    }
}

/// A `Write + Seek` over a channel of chunks: keeps the bytes not known final (from `sent`
/// on), sends the rest.
pub(super) struct ChunkWriter {
    tx: mpsc::Sender<Vec<u8>>,
    /// The bytes from offset `sent` to the end.
    buf: Vec<u8>,
    sent: u64,
    pos: u64,
    hold: Hold,
    /// An entry the zip writer will patch has been written to since the last patch: nothing
    /// from its header on is final.
    unpatched: bool,
}

impl ChunkWriter {
    pub fn new(tx: mpsc::Sender<Vec<u8>>, hold: Hold) -> Self {
        ChunkWriter {
            tx,
            buf: Vec::with_capacity(CHUNK),
            sent: 0,
            pos: 0,
            hold,
            unpatched: false,
        }
    }

    fn end(&self) -> u64 {
        self.sent + self.buf.len() as u64
    }

    fn send(&mut self) -> io::Result<()> {
        if self.hold.aborted() {
            return Err(io::Error::other("export stream: the export failed"));
        }
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
        self.sent += chunk.len() as u64;
        // On the blocking pool: waiting here is how a slow reader slows the export. Outside
        // Tokio's cooperative budget: this thread is inside `Handle::block_on`, which renews
        // the budget only when it polls again, so a send that found it spent would wait for
        // ever (a year's export hung so before this).
        futures::executor::block_on(tokio::task::unconstrained(self.tx.send(chunk)))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the download was closed"))
    }

    /// Sends what is left (the zip's directory, after `ZipWriter::finish`, which has
    /// finished every entry): the bundle is complete. Only a finished export calls this.
    pub fn finish(mut self) -> io::Result<()> {
        self.send()
    }
}

impl Write for ChunkWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.pos < self.sent {
            return Err(io::Error::other(
                "export stream: a write to bytes already sent",
            ));
        }
        if self.hold.get() {
            self.unpatched = true;
        }
        let at = (self.pos - self.sent) as usize;
        let overlap = data.len().min(self.buf.len().saturating_sub(at));
        self.buf[at..at + overlap].copy_from_slice(&data[..overlap]);
        self.buf.extend_from_slice(&data[overlap..]);
        self.pos += data.len() as u64;
        if !self.unpatched && self.pos == self.end() && self.buf.len() >= CHUNK {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.unpatched {
            // Nothing is final until the entry is patched; sent then.
            return Ok(());
        }
        self.send()
    }
}

impl Seek for ChunkWriter {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let target = match to {
            SeekFrom::Start(p) => Some(p),
            SeekFrom::End(d) => self.end().checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        let Some(p) = target.filter(|p| (self.sent..=self.end()).contains(p)) else {
            return Err(io::Error::other(format!(
                "export stream: cannot seek to {to:?} ({} bytes sent, {} written)",
                self.sent,
                self.end()
            )));
        };
        // Back at the end after patching a header: the entry is finished, all of it final.
        let patched = p == self.end() && self.pos < p;
        self.pos = p;
        if patched {
            self.unpatched = false;
            self.send()?;
        }
        Ok(p)
    }
}

/// Whether the export stopped because its reader went away.
fn closed(e: &ExportError) -> bool {
    match e {
        ExportError::Io(e) | ExportError::Zip(zip::result::ZipError::Io(e)) => {
            e.kind() == io::ErrorKind::BrokenPipe
        }
        _ => false,
    }
}

/// An export under way: its chunks, then its outcome.
pub struct Streaming {
    chunks: mpsc::Receiver<Vec<u8>>,
    done: Option<tokio::task::JoinHandle<Result<ExportSummary, ExportError>>>,
}

/// Starts writing the bundle of `request` on the blocking pool (the caller has checked the
/// request with [`super::check`] and audited it). Must be called within a Tokio runtime.
pub fn start(
    store: Store,
    catalog: Arc<Catalog>,
    signer: Signer,
    request: ExportRequest,
) -> Streaming {
    let (tx, chunks) = mpsc::channel(IN_FLIGHT);
    let runtime = tokio::runtime::Handle::current();
    let done = tokio::task::spawn_blocking(move || {
        let (from, to) = (request.from, request.to);
        let result = runtime.block_on(async move {
            let hold = Hold::default();
            let out = ChunkWriter::new(tx, hold.clone());
            let (out, summary) =
                super::export_to(&store, &catalog, &signer, &request, out, Some(hold)).await?;
            out.finish()?;
            Ok(summary)
        });
        match &result {
            Err(e) if closed(e) => {
                tracing::warn!(%from, %to, "export stopped: the download was closed");
            }
            Err(error) => {
                tracing::error!(%error, %from, %to, "export failed midway: the download is aborted");
            }
            Ok(s) => tracing::info!(%from, %to, files = s.files, "export streamed"),
        }
        result
    });
    Streaming {
        chunks,
        done: Some(done),
    }
}

impl Streaming {
    /// The next chunk; `None` at the end of a complete bundle; an error if the export failed
    /// (after which there is nothing more).
    pub async fn next(&mut self) -> Option<Result<Vec<u8>, ExportError>> {
        if let Some(chunk) = self.chunks.recv().await {
            return Some(Ok(chunk));
        }
        // The writer is gone: the export has ended, one way or the other.
        let done = self.done.take()?;
        match done.await {
            Ok(Ok(_)) => None,
            Ok(Err(e)) => Some(Err(e)),
            Err(e) => Some(Err(ExportError::Io(io::Error::other(format!(
                "the export task failed: {e}"
            ))))),
        }
    }

    /// The chunks as a stream (for a response body).
    pub fn into_stream(self) -> impl futures::Stream<Item = Result<Vec<u8>, ExportError>> {
        futures::stream::unfold(self, |mut s| async move { s.next().await.map(|c| (c, s)) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn writer(hold: bool) -> (ChunkWriter, mpsc::Receiver<Vec<u8>>, Hold) {
        let (tx, rx) = mpsc::channel(64);
        let h = Hold::default();
        h.set(hold);
        (ChunkWriter::new(tx, h.clone()), rx, h)
    }

    fn received(rx: &mut mpsc::Receiver<Vec<u8>>) -> Vec<u8> {
        let mut out = Vec::new();
        while let Ok(c) = rx.try_recv() {
            out.extend(c);
        }
        out
    }

    /// Patched and copied entries, in every order, some larger than a chunk.
    fn write_entries<W: Write + Seek>(out: &mut zip::ZipWriter<W>, hold: Option<&Hold>) {
        use zip::write::SimpleFileOptions;
        let big: Vec<u8> = (0..300_000u32).flat_map(|i| i.to_le_bytes()).collect();
        let copied = {
            let mut z = zip::ZipWriter::new(io::Cursor::new(Vec::new()));
            z.start_file("b/copied.bin", SimpleFileOptions::default())
                .unwrap();
            z.write_all(&big).unwrap();
            z.finish().unwrap().into_inner()
        };
        let kinds = [
            "copied", "patched", "copied", "patched", "patched", "copied", "copied",
        ];
        for (i, kind) in kinds.iter().enumerate() {
            if *kind == "patched" {
                if let Some(h) = hold {
                    h.set(true);
                }
                out.start_file(format!("a/{i}.bin"), SimpleFileOptions::default())
                    .unwrap();
                out.write_all(&big[..big.len() / (i + 1)]).unwrap();
            } else {
                if let Some(h) = hold {
                    h.set(false);
                }
                let mut src = zip::ZipArchive::new(io::Cursor::new(copied.clone())).unwrap();
                out.raw_copy_file_rename(src.by_index_raw(0).unwrap(), format!("c/{i}.bin"))
                    .unwrap();
            }
        }
    }

    /// A zip written through the writer is byte for byte the zip written to memory; copied
    /// entries go out as they are written, patched ones once patched.
    #[test]
    fn a_zip_through_the_writer_is_the_zip_in_memory() {
        let mut expected = zip::ZipWriter::new(io::Cursor::new(Vec::new()));
        write_entries(&mut expected, None);
        let expected = expected.finish().unwrap().into_inner();

        let (w, mut rx, hold) = writer(false);
        let mut z = zip::ZipWriter::new(w);
        write_entries(&mut z, Some(&hold));
        let w = z.finish().unwrap();
        let before_finish = received(&mut rx);
        assert!(before_finish.len() > expected.len() / 2, "streamed as made");
        w.finish().unwrap();
        let mut got = before_finish;
        got.extend(received(&mut rx));
        assert_eq!(got.len(), expected.len());
        assert!(got == expected, "same bytes");
    }

    #[test]
    fn bytes_already_sent_cannot_change() {
        let (mut w, mut rx, hold) = writer(false);
        w.write_all(&vec![1u8; CHUNK]).unwrap();
        assert_eq!(received(&mut rx).len(), CHUNK);
        assert!(w.seek(SeekFrom::Start(10)).is_err());
        assert_eq!(w.stream_position().unwrap(), CHUNK as u64);
        // Held: kept (and patchable) until the entry is finished.
        hold.set(true);
        w.write_all(&vec![2u8; 2 * CHUNK]).unwrap();
        assert!(received(&mut rx).is_empty());
        w.seek(SeekFrom::Start(CHUNK as u64 + 1)).unwrap();
        w.write_all(&[9]).unwrap();
        w.flush().unwrap();
        assert!(received(&mut rx).is_empty(), "not patched yet");
        w.seek(SeekFrom::End(0)).unwrap();
        let sent = received(&mut rx);
        assert_eq!(sent.len(), 2 * CHUNK);
        assert_eq!(&sent[..3], &[2, 9, 2]);
    }

    /// A zip writer dropped unfinished writes its directory: after a failure none of it
    /// goes out, so what was sent is no zip.
    #[test]
    fn a_failed_export_sends_no_zip_directory() {
        let (w, mut rx, hold) = writer(false);
        let mut z = zip::ZipWriter::new(w);
        write_entries(&mut z, Some(&hold));
        // Enough files for a directory of several chunks.
        let tiny = {
            let mut t = zip::ZipWriter::new(io::Cursor::new(Vec::new()));
            t.start_file("t", zip::write::SimpleFileOptions::default())
                .unwrap();
            t.write_all(b"tiny").unwrap();
            t.finish().unwrap().into_inner()
        };
        let mut src = zip::ZipArchive::new(io::Cursor::new(tiny)).unwrap();
        for i in 0..3000 {
            let name = format!("evidence/{i:060}.json");
            z.raw_copy_file_rename(src.by_index_raw(0).unwrap(), name)
                .unwrap();
        }
        let abort = AbortUnlessDone::new(Some(&hold));
        drop(abort);
        drop(z);
        let sent = received(&mut rx);
        assert!(sent.len() > CHUNK);
        let directory = sent.windows(4).any(|w| w == b"PK\x01\x02");
        assert!(!directory, "no directory entry was sent");
        assert!(zip::ZipArchive::new(io::Cursor::new(sent)).is_err());
        // And a finished one is a zip.
        let (w, mut rx, hold) = writer(false);
        let mut z = zip::ZipWriter::new(w);
        write_entries(&mut z, Some(&hold));
        let abort = AbortUnlessDone::new(Some(&hold));
        abort.done();
        z.finish().unwrap().finish().unwrap();
        assert_eq!(
            zip::ZipArchive::new(io::Cursor::new(received(&mut rx)))
                .unwrap()
                .len(),
            7
        );
    }

    /// Hundreds of chunks sent from one poll of the export (as a year's populations are):
    /// each send completes, none waits on a spent cooperative budget.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn many_chunks_from_the_blocking_pool_do_not_stall() {
        let (tx, mut rx) = mpsc::channel(IN_FLIGHT);
        let runtime = tokio::runtime::Handle::current();
        let producer = tokio::task::spawn_blocking(move || {
            runtime.block_on(async move {
                let mut w = ChunkWriter::new(tx, Hold::default());
                for _ in 0..1000 {
                    w.write_all(&[7u8; CHUNK]).unwrap();
                }
                w.finish().unwrap();
            })
        });
        let mut got = 0;
        let read = async {
            while let Some(c) = rx.recv().await {
                got += c.len();
            }
        };
        tokio::time::timeout(std::time::Duration::from_secs(60), read)
            .await
            .expect("the writer stalled");
        producer.await.unwrap();
        assert_eq!(got, 1000 * CHUNK);
    }

    #[test]
    fn a_closed_download_stops_the_writer() {
        let (mut w, rx, _) = writer(false);
        drop(rx);
        let e = w.write_all(&vec![0u8; CHUNK]).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::BrokenPipe);
    }
}
