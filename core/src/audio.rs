//! Audio loading: any supported file -> mono f32 at 16 kHz (Whisper / Qwen2-Audio input).
//!
//! WAV goes through `hound` (falling back to symphonia for formats hound rejects), everything
//! else (FLAC, Ogg Vorbis, MP3) through symphonia. Truncated or corrupt files are errors, never
//! silently shortened signals.

use std::fs::File;
use std::io::{self, BufReader, ErrorKind, Read};
use std::path::{Path, PathBuf};

use rubato::{Resampler, SincFixedIn, SincInterpolationParameters, SincInterpolationType, WindowFunction};
use symphonia::core::audio::{SampleBuffer, SignalSpec};
use symphonia::core::codecs::{DecoderOptions, CODEC_TYPE_FLAC, CODEC_TYPE_NULL};
use symphonia::core::errors::Error as SymError;
use symphonia::core::formats::FormatOptions;
use symphonia::core::io::MediaSourceStream;
use symphonia::core::meta::MetadataOptions;
use symphonia::core::probe::Hint;

/// Sample rate expected by the Whisper / Qwen2-Audio feature extractors.
pub const TARGET_SAMPLE_RATE: u32 = 16_000;

/// Why an audio file could not be loaded. Every message starts with the file path.
#[derive(Debug, thiserror::Error)]
pub enum AudioError {
    #[error("{}: cannot open or read the file: {source} (check that the path exists and is readable)", path.display())]
    Io { path: PathBuf, source: io::Error },
    #[error("{}: corrupt or truncated audio: {detail} (re-download or re-encode the file)", path.display())]
    Corrupt { path: PathBuf, detail: String },
    #[error("{}: the file contains no audio samples", path.display())]
    Empty { path: PathBuf },
    #[error("{}: unsupported audio format: {detail} (convert it, e.g. `ffmpeg -i IN -ac 1 -ar 16000 OUT.flac`)", path.display())]
    Unsupported { path: PathBuf, detail: String },
    #[error("{}: sample {index} of the decoded mono signal is NaN or infinite (re-export the file)", path.display())]
    NonFinite { path: PathBuf, index: usize },
    #[error("{}: resampling to 16 kHz failed: {detail}", path.display())]
    Resample { path: PathBuf, detail: String },
}

/// Decoded audio, mono, at [`TARGET_SAMPLE_RATE`].
#[derive(Debug, Clone)]
pub struct Audio {
    pub samples: Vec<f32>,
    pub source_sample_rate: u32,
    pub source_channels: u16,
}

impl Audio {
    /// Duration in seconds at [`TARGET_SAMPLE_RATE`].
    pub fn duration_s(&self) -> f64 {
        self.samples.len() as f64 / f64::from(TARGET_SAMPLE_RATE)
    }
}

/// Decode, mix down to mono (mean of channels), check for NaN/Inf, resample to 16 kHz.
pub fn load_audio(path: &Path) -> Result<Audio, AudioError> {
    let (mono, rate, channels) = decode_mono(path)?;
    if let Some(index) = mono.iter().position(|x| !x.is_finite()) {
        return Err(AudioError::NonFinite { path: path.to_path_buf(), index });
    }
    let samples = resample(&mono, rate, TARGET_SAMPLE_RATE)
        .map_err(|detail| AudioError::Resample { path: path.to_path_buf(), detail })?;
    if samples.is_empty() {
        return Err(AudioError::Empty { path: path.to_path_buf() });
    }
    Ok(Audio { samples, source_sample_rate: rate, source_channels: channels })
}

/// Decode only: (mono samples, sample rate, channels).
pub fn decode_mono(path: &Path) -> Result<(Vec<f32>, u32, u16), AudioError> {
    let head = read_head(path)?;
    let ext = path.extension().and_then(|e| e.to_str()).map(|e| e.to_ascii_lowercase());
    let ext = ext.as_deref();
    let decoded = match sniff(&head) {
        Container::Wav => decode_wav(path, ext)?,
        Container::Other => {
            if head.starts_with(b"fLaC") {
                check_flac_metadata(path)?;
            }
            decode_symphonia(path, ext)?
        }
        Container::Unknown => return Err(unknown_container(path, ext, &head)),
    };
    let (samples, rate, channels) = decoded;
    if rate == 0 || rate > MAX_SAMPLE_RATE {
        return Err(corrupt(path, format!("the header declares a sample rate of {rate} Hz")));
    }
    if samples.is_empty() {
        return Err(AudioError::Empty { path: path.to_path_buf() });
    }
    Ok((samples, rate, channels))
}

const SINC_LEN: usize = 256;
const CHUNK: usize = 1024;

/// Band-limited resampling of a mono signal (rubato windowed sinc).
///
/// Output length is `round(len * to / from)`; output sample `m` sits at input time
/// `m * from / to`, i.e. the signal is not shifted. Identity when `from == to`.
pub fn resample(samples: &[f32], from: u32, to: u32) -> Result<Vec<f32>, String> {
    if from == 0 || to == 0 {
        return Err(format!("invalid sample rates {from} Hz -> {to} Hz"));
    }
    if from == to {
        return Ok(samples.to_vec());
    }
    let n = samples.len();
    let (from_w, to_w) = (u128::from(from), u128::from(to));
    let out_len = ((n as u128 * to_w * 2 + from_w) / (2 * from_w)) as usize;
    if out_len == 0 {
        return Ok(Vec::new());
    }
    let g = gcd(from, to);
    let (p, q) = ((to / g) as usize, (from / g) as usize);
    // rubato's SincFixedIn (0.16) puts output k at input time (k+1)*q/p - 1 (+1/oversampling),
    // which is not a whole number of output samples, and its `output_delay()` does not describe
    // it. Prepending q-1 zeros and dropping p-1 outputs puts output m exactly at m*q/p.
    let pad = q - 1;
    let skip = p - 1;
    let need = skip + out_len;
    let total = pad + n;
    let t_ratio = f64::from(from) / f64::from(to);
    let chunk = CHUNK.max(4 * (SINC_LEN + t_ratio.ceil() as usize));
    let params = SincInterpolationParameters {
        sinc_len: SINC_LEN,
        f_cutoff: 0.95,
        oversampling_factor: 256,
        interpolation: SincInterpolationType::Cubic,
        window: WindowFunction::BlackmanHarris2,
    };
    let mut rs = SincFixedIn::<f32>::new(f64::from(to) / f64::from(from), 1.0, params, chunk, 1)
        .map_err(|e| format!("cannot build resampler {from} Hz -> {to} Hz: {e}"))?;
    let mut inbuf = vec![vec![0f32; chunk]];
    let mut outbuf = rs.output_buffer_allocate(true);
    let mut out: Vec<f32> = Vec::with_capacity(need + outbuf[0].len());
    // Zeros after the end flush the filter tail.
    let limit = total + 4 * (chunk + SINC_LEN) + 2 * t_ratio.ceil() as usize;
    let mut pos = 0usize;
    while out.len() < need {
        if pos > limit {
            return Err(format!("resampler produced only {} of {need} frames", out.len()));
        }
        let buf = &mut inbuf[0];
        buf.fill(0.0);
        let (lo, hi) = (pos.max(pad), (pos + chunk).min(total));
        if lo < hi {
            buf[lo - pos..hi - pos].copy_from_slice(&samples[lo - pad..hi - pad]);
        }
        let (_, produced) = rs
            .process_into_buffer(&inbuf, &mut outbuf, None)
            .map_err(|e| format!("resampling {from} Hz -> {to} Hz: {e}"))?;
        out.extend_from_slice(&outbuf[0][..produced]);
        pos += chunk;
    }
    out.drain(..skip);
    out.truncate(out_len);
    Ok(out)
}

fn gcd(mut a: u32, mut b: u32) -> u32 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

type Decoded = (Vec<f32>, u32, u16);

enum Container {
    Wav,
    Other,
    Unknown,
}

fn corrupt(path: &Path, detail: impl Into<String>) -> AudioError {
    AudioError::Corrupt { path: path.to_path_buf(), detail: detail.into() }
}

fn unsupported(path: &Path, detail: impl Into<String>) -> AudioError {
    AudioError::Unsupported { path: path.to_path_buf(), detail: detail.into() }
}

fn io_err(path: &Path, source: io::Error) -> AudioError {
    AudioError::Io { path: path.to_path_buf(), source }
}

/// First 16 bytes (fewer for tiny files).
fn read_head(path: &Path) -> Result<Vec<u8>, AudioError> {
    let file = File::open(path).map_err(|e| io_err(path, e))?;
    let mut head = Vec::with_capacity(16);
    file.take(16).read_to_end(&mut head).map_err(|e| io_err(path, e))?;
    Ok(head)
}

/// Identify the container by its signature. Symphonia's probe scans up to 1 MiB for any
/// marker (MP3 sync words turn up in random bytes), so only signatures at offset 0 count.
fn sniff(head: &[u8]) -> Container {
    if head.len() >= 12 && &head[0..4] == b"RIFF" && &head[8..12] == b"WAVE" {
        Container::Wav
    } else if head.starts_with(b"fLaC") || head.starts_with(b"OggS") || head.starts_with(b"ID3") {
        Container::Other
    } else if head.len() >= 2
        && head[0] == 0xFF
        && head[1] & 0xE0 == 0xE0
        && (head[1] >> 3) & 3 != 1
        && (head[1] >> 1) & 3 != 0
    {
        // MPEG audio frame sync (valid version, layer I/II/III).
        Container::Other
    } else {
        Container::Unknown
    }
}

/// symphonia allocates whatever the length fields inside a FLAC VORBIS_COMMENT or PICTURE block
/// claim (a 1.6 GB comment in a 16 kB file aborts the process), so every metadata block and the
/// lengths inside those two are checked against the block and the file first.
fn check_flac_metadata(path: &Path) -> Result<(), AudioError> {
    use std::io::{Seek, SeekFrom};
    let mut file = File::open(path).map_err(|e| io_err(path, e))?;
    let file_len = file.metadata().map_err(|e| io_err(path, e))?.len();
    let mut at = 4u64;
    loop {
        let mut header = [0u8; 4];
        file.seek(SeekFrom::Start(at))
            .and_then(|_| file.read_exact(&mut header))
            .map_err(|_| corrupt(path, format!("the FLAC metadata block header at byte {at} is cut off")))?;
        let (last, kind) = (header[0] & 0x80 != 0, header[0] & 0x7f);
        let len = u64::from(u32::from_be_bytes([0, header[1], header[2], header[3]]));
        if at + 4 + len > file_len {
            return Err(corrupt(
                path,
                format!("FLAC metadata block {kind} at byte {at} claims {len} bytes past the end"),
            ));
        }
        if kind == 4 || kind == 6 {
            // At most 16 MiB: the block length field has 24 bits.
            let mut block = vec![0u8; len as usize];
            file.read_exact(&mut block).map_err(|e| io_err(path, e))?;
            let inner_ok = if kind == 4 { vorbis_comment_fits(&block) } else { flac_picture_fits(&block) };
            if !inner_ok {
                let what = if kind == 4 { "VORBIS_COMMENT" } else { "PICTURE" };
                return Err(corrupt(path, format!("the FLAC {what} block at byte {at} has lengths past its end")));
            }
        }
        at += 4 + len;
        if last {
            return Ok(());
        }
    }
}

/// Vendor string, comment count and every comment (little-endian lengths) inside `block`.
fn vorbis_comment_fits(block: &[u8]) -> bool {
    let mut at = 0usize;
    let take_len = |at: &mut usize| -> Option<usize> {
        let b = block.get(*at..*at + 4)?;
        *at += 4;
        Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
    };
    let Some(vendor) = take_len(&mut at) else { return false };
    at = at.saturating_add(vendor);
    let Some(count) = take_len(&mut at) else { return false };
    if at > block.len() || count > (block.len() - at) / 4 {
        return false;
    }
    for _ in 0..count {
        let Some(n) = take_len(&mut at) else { return false };
        at = at.saturating_add(n);
        if at > block.len() {
            return false;
        }
    }
    true
}

/// MIME type, description and picture data (big-endian lengths) inside `block`.
fn flac_picture_fits(block: &[u8]) -> bool {
    let u32_at = |at: usize| block.get(at..at + 4).map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize);
    let mut at = 4; // picture type
    for skip_after in [0usize, 16] {
        // MIME type, then description; after the description come width, height, depth, colours.
        let Some(n) = u32_at(at) else { return false };
        at = at.saturating_add(4).saturating_add(n).saturating_add(skip_after);
    }
    u32_at(at).is_some_and(|n| at.saturating_add(4).saturating_add(n) <= block.len())
}

fn unknown_container(path: &Path, ext: Option<&str>, head: &[u8]) -> AudioError {
    let sig: String = head.iter().take(8).map(|b| format!("{b:02x}")).collect();
    let known = "supported: WAV, FLAC, Ogg Vorbis, MP3";
    match ext {
        Some(e @ ("wav" | "wave" | "flac" | "ogg" | "oga" | "mp3" | "mp2" | "mpga")) => {
            if head.is_empty() {
                corrupt(path, format!("the .{e} file is empty (0 bytes)"))
            } else {
                corrupt(path, format!("not a valid .{e} file: unrecognised signature {sig}"))
            }
        }
        _ => unsupported(path, format!("unknown container (signature {sig:?}; {known})")),
    }
}

/// Mean over channels of interleaved samples; on error returns it with the count read.
fn mix_frames<E>(
    samples: impl Iterator<Item = Result<f64, E>>,
    channels: usize,
    capacity: usize,
) -> Result<Vec<f32>, (E, usize)> {
    let mut out = Vec::with_capacity(capacity);
    let (mut acc, mut k, mut read) = (0f64, 0usize, 0usize);
    for s in samples {
        acc += s.map_err(|e| (e, read))?;
        read += 1;
        k += 1;
        if k == channels {
            out.push((acc / channels as f64) as f32);
            acc = 0.0;
            k = 0;
        }
    }
    Ok(out)
}

fn decode_wav(path: &Path, ext: Option<&str>) -> Result<Decoded, AudioError> {
    let file = File::open(path).map_err(|e| io_err(path, e))?;
    let file_len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let mut reader = match hound::WavReader::new(BufReader::new(file)) {
        Ok(r) => r,
        Err(hound::Error::IoError(e)) if is_short_read(&e) => return Err(corrupt(path, "the WAV header is truncated")),
        Err(hound::Error::IoError(e)) => return Err(io_err(path, e)),
        Err(e) => return wav_fallback(path, ext, e),
    };
    let spec = reader.spec();
    if spec.channels == 0 {
        return Err(corrupt(path, "the WAV header declares 0 channels"));
    }
    let ch = usize::from(spec.channels);
    let announced = reader.len() as usize;
    // Don't trust the header for the allocation size.
    let bytes_per_sample = u64::from(spec.bits_per_sample.div_ceil(8).max(1));
    let capacity = announced.min((file_len / bytes_per_sample) as usize) / ch;
    let mixed = match spec.sample_format {
        hound::SampleFormat::Int => {
            let scale = 1.0 / 2f64.powi(i32::from(spec.bits_per_sample) - 1);
            let it = reader.samples::<i32>().map(|s| s.map(|v| f64::from(v) * scale));
            mix_frames(it, ch, capacity)
        }
        hound::SampleFormat::Float => {
            let it = reader.samples::<f32>().map(|s| s.map(f64::from));
            mix_frames(it, ch, capacity)
        }
    };
    match mixed {
        Ok(samples) => Ok((samples, spec.sample_rate, spec.channels)),
        Err((hound::Error::IoError(e), read)) if is_short_read(&e) => Err(corrupt(
            path,
            format!(
                "the data chunk is truncated: the header announces {announced} samples \
                     but only {read} are present"
            ),
        )),
        Err((hound::Error::IoError(e), _)) => Err(io_err(path, e)),
        Err((e, _)) => wav_fallback(path, ext, e),
    }
}

/// hound reports a short read as `UnexpectedEof` or as `Other` ("Failed to read enough bytes").
fn is_short_read(e: &io::Error) -> bool {
    matches!(e.kind(), ErrorKind::UnexpectedEof | ErrorKind::Other)
}

/// Beyond the fastest rate any audio format uses (768 kHz); a header that declares more is corrupt.
const MAX_SAMPLE_RATE: u32 = 1_000_000;

/// The sample rate in the `fmt ` chunk of a RIFF/WAVE file, read without trusting anything else.
fn wav_declared_rate(path: &Path) -> Option<u32> {
    let mut head = Vec::new();
    File::open(path).ok()?.take(1 << 16).read_to_end(&mut head).ok()?;
    let mut at = 12;
    while at + 8 <= head.len() {
        let size = u32::from_le_bytes(head[at + 4..at + 8].try_into().ok()?) as usize;
        if &head[at..at + 4] == b"fmt " {
            return head.get(at + 12..at + 16).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
        }
        at = at.checked_add(8)?.checked_add(size.checked_add(size % 2)?)?;
    }
    None
}

/// hound rejected the file: let symphonia try (A-law, mu-law, 64-bit float, ...).
fn wav_fallback(path: &Path, ext: Option<&str>, hound_err: hound::Error) -> Result<Decoded, AudioError> {
    if let Some(rate) = wav_declared_rate(path).filter(|&r| r == 0 || r > MAX_SAMPLE_RATE) {
        return Err(corrupt(path, format!("the header declares a sample rate of {rate} Hz")));
    }
    match decode_symphonia(path, ext) {
        Ok(d) => Ok(d),
        Err(AudioError::Unsupported { detail, .. }) => Err(match hound_err {
            hound::Error::FormatError(m) => corrupt(path, format!("invalid WAV header: {m} (symphonia: {detail})")),
            e => unsupported(path, format!("WAV: {e}; symphonia: {detail}")),
        }),
        Err(e) => Err(e),
    }
}

fn sym_err(path: &Path, err: SymError, context: &str) -> AudioError {
    match err {
        SymError::IoError(e) if e.kind() == ErrorKind::UnexpectedEof => {
            corrupt(path, format!("unexpected end of file while {context}"))
        }
        SymError::IoError(e) => io_err(path, e),
        SymError::Unsupported(m) => unsupported(path, format!("{context}: {m}")),
        SymError::LimitError(m) => unsupported(path, format!("{context}: limit exceeded: {m}")),
        e => corrupt(path, format!("{context}: {e}")),
    }
}

thread_local! {
    /// Set while symphonia runs on this thread, so that its panics are not printed.
    static IN_DECODER: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// symphonia asserts on some malformed headers (a zero time base, for one) instead of
/// returning an error. A panic in it is caught and reported as an unsupported file naming the
/// path, and the panic message is kept off stderr; panics anywhere else print as before.
fn decode_symphonia(path: &Path, ext: Option<&str>) -> Result<Decoded, AudioError> {
    static QUIET_HOOK: std::sync::Once = std::sync::Once::new();
    QUIET_HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !IN_DECODER.with(std::cell::Cell::get) {
                previous(info);
            }
        }));
    });
    IN_DECODER.with(|d| d.set(true));
    let result = std::panic::catch_unwind(|| decode_symphonia_unguarded(path, ext));
    IN_DECODER.with(|d| d.set(false));
    result.unwrap_or_else(|panic| {
        let message = audiosae_plugin_api::ffi::panic_message(panic.as_ref()).unwrap_or_else(|| "no message".into());
        Err(AudioError::Unsupported {
            path: path.to_path_buf(),
            detail: format!("the decoder gave up on it ({message})"),
        })
    })
}

fn decode_symphonia_unguarded(path: &Path, ext: Option<&str>) -> Result<Decoded, AudioError> {
    let file = File::open(path).map_err(|e| io_err(path, e))?;
    let mss = MediaSourceStream::new(Box::new(file), Default::default());
    let mut hint = Hint::new();
    if let Some(e) = ext {
        hint.with_extension(e);
    }
    let format_opts = FormatOptions { enable_gapless: true, ..Default::default() };
    let probed = symphonia::default::get_probe()
        .format(&hint, mss, &format_opts, &MetadataOptions::default())
        .map_err(|e| sym_err(path, e, "reading the container header"))?;
    let mut format = probed.format;
    let track = format
        .tracks()
        .iter()
        .find(|t| t.codec_params.codec != CODEC_TYPE_NULL)
        .ok_or_else(|| unsupported(path, "no audio track with a known codec"))?;
    let track_id = track.id;
    let params = track.codec_params.clone();
    let codecs = symphonia::default::get_codecs();
    let codec_name = codecs.get_codec(params.codec).map(|d| d.short_name).unwrap_or("unknown codec");
    let mut decoder = codecs
        .make(&params, &DecoderOptions::default())
        .map_err(|e| sym_err(path, e, &format!("opening the {codec_name} decoder")))?;
    let lossless = params.codec == CODEC_TYPE_FLAC || codec_name.starts_with("pcm");

    let mut rate = params.sample_rate;
    let mut channels = params.channels.map(|c| c.count() as u16).unwrap_or(0);
    let mut out: Vec<f32> = Vec::new();
    let mut frames = 0u64;
    let (mut packets, mut skipped) = (0usize, 0usize);
    let mut first_decode_err: Option<String> = None;
    let mut sbuf: Option<(SampleBuffer<f32>, SignalSpec)> = None;
    loop {
        let packet = match format.next_packet() {
            Ok(p) => p,
            // symphonia signals the end of the stream as UnexpectedEof at a packet boundary.
            Err(SymError::IoError(e)) if e.kind() == ErrorKind::UnexpectedEof => break,
            Err(SymError::ResetRequired) => return Err(unsupported(path, "stream parameters change mid-file")),
            Err(e) => return Err(sym_err(path, e, &format!("reading packet {packets}"))),
        };
        if packet.track_id() != track_id {
            continue;
        }
        packets += 1;
        let buf = match decoder.decode(&packet) {
            Ok(b) => b,
            Err(SymError::DecodeError(m)) => {
                skipped += 1;
                first_decode_err.get_or_insert_with(|| m.to_string());
                continue;
            }
            Err(SymError::IoError(e)) => {
                return Err(corrupt(path, format!("packet {packets} ({codec_name}) is truncated: {e}")))
            }
            Err(e) => return Err(sym_err(path, e, &format!("decoding packet {packets}"))),
        };
        let n = buf.frames();
        if n == 0 {
            continue;
        }
        let spec = *buf.spec();
        match rate {
            None => rate = Some(spec.rate),
            Some(r) if r != spec.rate => {
                return Err(unsupported(path, format!("sample rate changes mid-stream ({r} Hz -> {} Hz)", spec.rate)))
            }
            Some(_) => {}
        }
        let ch = spec.channels.count();
        if ch == 0 {
            return Err(corrupt(path, "a decoded packet has 0 channels"));
        }
        channels = channels.max(ch as u16);
        let needed = buf.capacity() * ch;
        if sbuf.as_ref().is_none_or(|(b, s)| *s != spec || b.capacity() < needed) {
            sbuf = Some((SampleBuffer::new(buf.capacity() as u64, spec), spec));
        }
        let (sb, _) = sbuf.as_mut().expect("sample buffer was just set");
        sb.copy_interleaved_ref(buf);
        out.extend(sb.samples().chunks_exact(ch).map(|f| {
            let sum: f64 = f.iter().map(|&x| f64::from(x)).sum();
            (sum / ch as f64) as f32
        }));
        frames += n as u64;
    }

    let first = first_decode_err.unwrap_or_default();
    if skipped > 0 && (lossless || out.is_empty() || skipped * 100 > packets) {
        return Err(corrupt(
            path,
            format!("{skipped} of {packets} {codec_name} packets failed to decode (first: {first})"),
        ));
    }
    if let Some(expected) = params.n_frames {
        // Exact for FLAC/PCM; MP3 durations may be estimates, so allow some slack for lossy.
        let slack = if lossless { 0 } else { (expected / 20).max(8192) };
        if frames + slack < expected {
            return Err(corrupt(
                path,
                format!(
                    "the stream ends after {frames} frames but the header announces {expected} \
                     (file truncated?)"
                ),
            ));
        }
    }
    let rate = rate.ok_or_else(|| corrupt(path, "the sample rate is unknown"))?;
    Ok((out, rate, channels))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::f64::consts::PI;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A scratch directory removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(name: &str) -> Self {
            static COUNTER: AtomicUsize = AtomicUsize::new(0);
            let dir = std::env::temp_dir().join(format!(
                "audiosae-audio-{name}-{}-{}",
                std::process::id(),
                COUNTER.fetch_add(1, Ordering::Relaxed)
            ));
            std::fs::create_dir_all(&dir).unwrap();
            TempDir(dir)
        }
        fn path(&self, file: &str) -> PathBuf {
            self.0.join(file)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn fixture_flac() -> PathBuf {
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/speech/61-70968-0000.flac");
        assert!(p.exists(), "missing committed fixture {}", p.display());
        p
    }

    /// Least-squares fit y[m] ~ a sin(w m) + b cos(w m) over `range`.
    /// Returns (amplitude, phase, residual power, signal power).
    fn fit_sine(y: &[f32], w: f64, range: std::ops::Range<usize>) -> (f64, f64, f64, f64) {
        let (mut ss, mut sc, mut cc, mut ys, mut yc) = (0.0, 0.0, 0.0, 0.0, 0.0);
        for m in range.clone() {
            let (s, c) = (w * m as f64).sin_cos();
            let v = f64::from(y[m]);
            ss += s * s;
            sc += s * c;
            cc += c * c;
            ys += v * s;
            yc += v * c;
        }
        let det = ss * cc - sc * sc;
        let a = (ys * cc - yc * sc) / det;
        let b = (yc * ss - ys * sc) / det;
        let (mut res, mut sig) = (0.0, 0.0);
        for m in range.clone() {
            let (s, c) = (w * m as f64).sin_cos();
            let fit = a * s + b * c;
            res += (f64::from(y[m]) - fit).powi(2);
            sig += fit * fit;
        }
        let n = range.len() as f64;
        (a.hypot(b), b.atan2(a), res / n, sig / n)
    }

    fn wrap(phase: f64) -> f64 {
        (phase + PI).rem_euclid(2.0 * PI) - PI
    }

    fn sine(n: usize, f: f64, rate: u32, phase: f64) -> Vec<f32> {
        (0..n).map(|i| (0.5 * (2.0 * PI * f * i as f64 / f64::from(rate) + phase).sin()) as f32).collect()
    }

    /// Frequency of the Hann-windowed DFT magnitude peak, scanned coarse then fine.
    fn peak_frequency(y: &[f32], rate: f64, lo: f64, hi: f64) -> f64 {
        let n = y.len();
        let win: Vec<f64> =
            (0..n).map(|i| f64::from(y[i]) * (0.5 - 0.5 * (2.0 * PI * i as f64 / n as f64).cos())).collect();
        let mag = |f: f64| {
            let w = 2.0 * PI * f / rate;
            let (mut re, mut im) = (0.0, 0.0);
            for (i, v) in win.iter().enumerate() {
                let (s, c) = (w * i as f64).sin_cos();
                re += v * c;
                im -= v * s;
            }
            re.hypot(im)
        };
        let scan = |lo: f64, hi: f64, step: f64| {
            let mut best = (lo, f64::MIN);
            let mut f = lo;
            while f <= hi {
                let m = mag(f);
                if m > best.1 {
                    best = (f, m);
                }
                f += step;
            }
            best.0
        };
        let coarse = scan(lo, hi, 1.0);
        scan(coarse - 1.0, coarse + 1.0, 0.01)
    }

    #[test]
    fn resample_sine_44k1_to_16k() {
        let (from, to, f, phase) = (44_100u32, 16_000u32, 1000.0, 0.3);
        let n = 2 * from as usize;
        let x = sine(n, f, from, phase);
        let y = resample(&x, from, to).unwrap();
        let expected_len = (n as f64 * f64::from(to) / f64::from(from)).round() as usize;
        assert_eq!(y.len(), expected_len);
        let edge = to as usize / 10;
        let w = 2.0 * PI * f / f64::from(to);
        let (amp, fitted_phase, res, sig) = fit_sine(&y, w, edge..y.len() - edge);
        let snr = 10.0 * (sig / res).log10();
        let shift = wrap(fitted_phase - phase);
        println!("44.1k -> 16k: SNR {snr:.1} dB, amplitude {amp:.6}, phase error {shift:.2e} rad");
        assert!(snr > 60.0, "SNR {snr} dB");
        assert!((amp - 0.5).abs() < 0.005, "amplitude {amp}");
        assert!(shift.abs() < 0.01, "time shift: phase error {shift} rad");
        let peak = peak_frequency(&y[edge..y.len() - edge], f64::from(to), 900.0, 1100.0);
        assert!((peak - f).abs() <= 1.0, "peak at {peak} Hz");
    }

    #[test]
    fn resample_no_time_shift_other_rates() {
        for &(from, to) in &[
            (8_000u32, 16_000u32),
            (48_000, 16_000),
            (22_050, 16_000),
            (32_000, 16_000),
            (11_025, 16_000),
            (16_000, 44_100),
        ] {
            let (f, phase) = (440.0, -1.1);
            let n = from as usize + 123;
            let y = resample(&sine(n, f, from, phase), from, to).unwrap();
            let expected = (n as f64 * f64::from(to) / f64::from(from)).round() as usize;
            assert_eq!(y.len(), expected, "{from}->{to}");
            let edge = to as usize / 10;
            let w = 2.0 * PI * f / f64::from(to);
            let (_, fitted, res, sig) = fit_sine(&y, w, edge..y.len() - edge);
            let snr = 10.0 * (sig / res).log10();
            let shift = wrap(fitted - phase);
            assert!(shift.abs() < 0.01, "{from}->{to}: phase error {shift}");
            assert!(snr > 60.0, "{from}->{to}: SNR {snr}");
            // The tail is flushed: outputs up to the end still carry the sine.
            let last = ((n - 33) as f64 * f64::from(to) / f64::from(from)) as usize;
            assert!((y.len() - last) as f64 <= 34.0 * f64::from(to) / f64::from(from) + 2.0);
            let ideal = 0.5 * (w * last as f64 + phase).sin();
            assert!((f64::from(y[last]) - ideal).abs() < 0.05, "{from}->{to}: tail");
        }
    }

    #[test]
    fn resample_identity_and_short_inputs() {
        let x = [0.1f32, -0.2, 0.3];
        assert_eq!(resample(&x, 16_000, 16_000).unwrap(), x.to_vec());
        assert!(resample(&[], 44_100, 16_000).unwrap().is_empty());
        for n in 0..12 {
            let x = vec![0.25f32; n];
            for &(from, to) in &[(44_100u32, 16_000u32), (8_000, 16_000), (16_001, 16_000)] {
                let y = resample(&x, from, to).unwrap();
                let expected = (n as f64 * f64::from(to) / f64::from(from)).round() as usize;
                assert_eq!(y.len(), expected, "n={n} {from}->{to}");
                assert!(y.iter().all(|v| v.is_finite()));
            }
        }
        assert!(resample(&x, 0, 16_000).is_err());
    }

    fn write_wav(path: &Path, spec: hound::WavSpec, frames: &[(f64, f64)]) {
        let mut w = hound::WavWriter::create(path, spec).unwrap();
        for &(l, r) in frames {
            for v in [l, r].into_iter().take(usize::from(spec.channels)) {
                match spec.sample_format {
                    hound::SampleFormat::Float => w.write_sample(v as f32).unwrap(),
                    hound::SampleFormat::Int => w.write_sample(v as i32).unwrap(),
                }
            }
        }
        w.finalize().unwrap();
    }

    #[test]
    fn wav_round_trips_all_sample_formats() {
        let dir = TempDir::new("wav");
        for (bits, format) in [
            (8u16, hound::SampleFormat::Int),
            (16, hound::SampleFormat::Int),
            (24, hound::SampleFormat::Int),
            (32, hound::SampleFormat::Int),
            (32, hound::SampleFormat::Float),
        ] {
            let spec =
                hound::WavSpec { channels: 2, sample_rate: 16_000, bits_per_sample: bits, sample_format: format };
            let (full, scale) = match format {
                hound::SampleFormat::Int => {
                    let full = 2f64.powi(i32::from(bits) - 1);
                    (full, 1.0 / full)
                }
                hound::SampleFormat::Float => (1.0, 1.0),
            };
            // Raw (stored) values, L != R, including both extremes.
            let frames: Vec<(f64, f64)> = (0..1600)
                .map(|i| match i {
                    0 => (-full, full - scale * full),
                    1 => (full - scale * full, full - scale * full),
                    2 => (-full, -full),
                    _ => {
                        let l = (0.6 * (i as f64 * 0.05).sin() * full).round();
                        let r = (-0.3 * (i as f64 * 0.11).cos() * full).round();
                        (l, r)
                    }
                })
                .collect();
            let path = dir.path(&format!("s{bits}{format:?}.wav"));
            write_wav(&path, spec, &frames);
            let audio = load_audio(&path).unwrap();
            assert_eq!(audio.source_sample_rate, 16_000);
            assert_eq!(audio.source_channels, 2);
            assert_eq!(audio.samples.len(), frames.len());
            assert!((audio.duration_s() - 0.1).abs() < 1e-9);
            for (i, (&got, &(l, r))) in audio.samples.iter().zip(&frames).enumerate() {
                let want = (l * scale + r * scale) / 2.0;
                assert!(
                    (f64::from(got) - want).abs() < 1e-6,
                    "{bits}-bit {format:?} frame {i}: got {got}, want {want}"
                );
            }
            // Extremes: int16 -32768 -> -1.0 (soundfile convention).
            assert_eq!(audio.samples[2], -1.0, "{bits}-bit {format:?}");
        }
    }

    #[test]
    fn wav_mono_44k1_is_resampled() {
        let dir = TempDir::new("wav44");
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: 44_100,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let frames: Vec<(f64, f64)> = (0..44_100).map(|i| ((i % 100) as f64, 0.0)).collect();
        let path = dir.path("a.wav");
        write_wav(&path, spec, &frames);
        let audio = load_audio(&path).unwrap();
        assert_eq!(audio.samples.len(), 16_000);
        assert_eq!((audio.source_sample_rate, audio.source_channels), (44_100, 1));
    }

    #[test]
    fn wav_rejected_by_hound_falls_back_to_symphonia() {
        // 64-bit float WAV: hound refuses it, symphonia decodes it.
        let dir = TempDir::new("f64");
        let values: Vec<f64> = (0..800).map(|i| 0.9 * (i as f64 * 0.07).sin()).collect();
        let data_len = (values.len() * 8) as u32;
        let mut b = Vec::new();
        b.extend_from_slice(b"RIFF");
        b.extend_from_slice(&(36 + data_len).to_le_bytes());
        b.extend_from_slice(b"WAVEfmt ");
        b.extend_from_slice(&16u32.to_le_bytes());
        b.extend_from_slice(&3u16.to_le_bytes()); // IEEE float
        b.extend_from_slice(&1u16.to_le_bytes());
        b.extend_from_slice(&16_000u32.to_le_bytes());
        b.extend_from_slice(&(16_000u32 * 8).to_le_bytes());
        b.extend_from_slice(&8u16.to_le_bytes());
        b.extend_from_slice(&64u16.to_le_bytes());
        b.extend_from_slice(b"data");
        b.extend_from_slice(&data_len.to_le_bytes());
        for v in &values {
            b.extend_from_slice(&v.to_le_bytes());
        }
        let path = dir.path("f64.wav");
        std::fs::write(&path, &b).unwrap();
        assert!(hound::WavReader::open(&path).is_err());
        let audio = load_audio(&path).unwrap();
        assert_eq!(audio.samples.len(), values.len());
        for (got, want) in audio.samples.iter().zip(&values) {
            assert!((f64::from(*got) - want).abs() < 1e-7);
        }
    }

    #[test]
    fn real_flac_fixture() {
        let path = fixture_flac();
        let (mono, rate, ch) = decode_mono(&path).unwrap();
        assert_eq!((mono.len(), rate, ch), (78_480, 16_000, 1));
        let audio = load_audio(&path).unwrap();
        assert_eq!(audio.samples.len(), 78_480);
        assert_eq!((audio.source_sample_rate, audio.source_channels), (16_000, 1));
        let max = audio.samples.iter().fold(0f32, |m, x| m.max(x.abs()));
        assert!(max > 0.05 && max < 1.0, "max abs {max}");
        assert!((audio.duration_s() - 4.905).abs() < 1e-9);
    }

    fn assert_names_path(err: &AudioError, path: &Path) {
        let msg = err.to_string();
        assert!(msg.starts_with(&path.display().to_string()), "message does not start with the path: {msg}");
    }

    #[test]
    fn truncated_wav_is_corrupt() {
        let dir = TempDir::new("trunc-wav");
        let path = dir.path("t.wav");
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: 16_000,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let frames: Vec<(f64, f64)> = (0..16_000).map(|i| ((i % 7) as f64, 0.0)).collect();
        write_wav(&path, spec, &frames);
        assert!(load_audio(&path).is_ok());
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 1000]).unwrap();
        let err = load_audio(&path).unwrap_err();
        assert!(matches!(err, AudioError::Corrupt { .. }), "{err:?}");
        assert_names_path(&err, &path);
        // Odd cut (mid-sample) as well.
        std::fs::write(&path, &bytes[..bytes.len() - 1001]).unwrap();
        let err = load_audio(&path).unwrap_err();
        assert!(matches!(err, AudioError::Corrupt { .. }), "{err:?}");
    }

    #[test]
    fn truncated_flac_is_corrupt() {
        let dir = TempDir::new("trunc-flac");
        let bytes = std::fs::read(fixture_flac()).unwrap();
        let path = dir.path("half.flac");
        std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
        let err = load_audio(&path).unwrap_err();
        println!("{err}");
        assert!(matches!(err, AudioError::Corrupt { .. }), "{err:?}");
        assert_names_path(&err, &path);
        // Header only.
        std::fs::write(&path, &bytes[..30]).unwrap();
        let err = load_audio(&path).unwrap_err();
        assert!(matches!(err, AudioError::Corrupt { .. }), "{err:?}");
    }

    /// Deterministic pseudo-random bytes (xorshift).
    fn random_bytes(n: usize, mut state: u64) -> Vec<u8> {
        (0..n)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state >> 24) as u8
            })
            .collect()
    }

    #[test]
    fn garbage_files_are_rejected() {
        let dir = TempDir::new("garbage");
        for (i, name) in ["x.wav", "x.flac"].iter().enumerate() {
            for seed in 1..20u64 {
                let path = dir.path(name);
                std::fs::write(&path, random_bytes(20_000, seed * 7919 + i as u64)).unwrap();
                let err = load_audio(&path).unwrap_err();
                assert!(matches!(err, AudioError::Corrupt { .. } | AudioError::Unsupported { .. }), "{name}: {err:?}");
                assert_names_path(&err, &path);
            }
        }
        let path = dir.path("x.xyz");
        std::fs::write(&path, "just some text, not audio\n".repeat(50)).unwrap();
        let err = load_audio(&path).unwrap_err();
        assert!(matches!(err, AudioError::Unsupported { .. }), "{err:?}");
        assert_names_path(&err, &path);
        // Random bytes with an unknown extension too.
        let path = dir.path("y.bin");
        std::fs::write(&path, random_bytes(5_000, 42)).unwrap();
        let err = load_audio(&path).unwrap_err();
        assert!(matches!(err, AudioError::Unsupported { .. }), "{err:?}");
    }

    #[test]
    fn empty_wav_is_empty() {
        let dir = TempDir::new("empty");
        let path = dir.path("e.wav");
        let spec = hound::WavSpec {
            channels: 2,
            sample_rate: 16_000,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        write_wav(&path, spec, &[]);
        let err = load_audio(&path).unwrap_err();
        assert!(matches!(err, AudioError::Empty { .. }), "{err:?}");
        assert_names_path(&err, &path);
        let err = decode_mono(&path).unwrap_err();
        assert!(matches!(err, AudioError::Empty { .. }), "{err:?}");
    }

    #[test]
    fn nan_in_float_wav_is_non_finite() {
        let dir = TempDir::new("nan");
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: 16_000,
            bits_per_sample: 32,
            sample_format: hound::SampleFormat::Float,
        };
        let mut frames: Vec<(f64, f64)> = (0..100).map(|i| (i as f64 * 0.001, 0.0)).collect();
        frames[5].0 = f64::NAN;
        let path = dir.path("nan.wav");
        write_wav(&path, spec, &frames);
        let err = load_audio(&path).unwrap_err();
        assert!(matches!(err, AudioError::NonFinite { index: 5, .. }), "{err:?}");
        assert_names_path(&err, &path);
        // Stereo: +Inf in the right channel of frame 7.
        let spec = hound::WavSpec { channels: 2, ..spec };
        let mut frames: Vec<(f64, f64)> = (0..100).map(|i| (i as f64 * 0.001, 0.0)).collect();
        frames[7].1 = f64::INFINITY;
        write_wav(&path, spec, &frames);
        let err = load_audio(&path).unwrap_err();
        assert!(matches!(err, AudioError::NonFinite { index: 7, .. }), "{err:?}");
    }

    #[test]
    fn missing_file_is_io() {
        let dir = TempDir::new("missing");
        let path = dir.path("does-not-exist.flac");
        let err = load_audio(&path).unwrap_err();
        assert!(matches!(err, AudioError::Io { .. }), "{err:?}");
        assert_names_path(&err, &path);
    }
}
