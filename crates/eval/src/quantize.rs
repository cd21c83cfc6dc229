//! `kefu models quantize`: llama.cpp's quantizer (`llama_model_quantize`) with guard rails.
//!
//! Invariants: the input is never overwritten (nor any other existing file without `--force`);
//! the output appears only when quantization succeeded (it is written beside the target under a
//! temporary name and renamed); requantizing a file that already holds quantized tensors needs
//! `allow_requantize`, because quality lost in the first quantization cannot come back.
//! Progress comes from llama.cpp's per-tensor log lines, read through a log callback that is
//! installed only while the quantizer runs.

use std::ffi::{CStr, CString, c_void};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::ValueEnum;
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};

use crate::gguf::{GgufInfo, inspect};

/// Target encodings offered by `kefu models quantize`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QuantType {
    /// 16-bit floats (no quantization).
    F16,
    /// 8-bit blocks; close to F16 quality at about half the size.
    #[value(name = "q8_0")]
    Q8_0,
    /// 4-bit k-quant mix (some tensors at higher precision).
    #[value(name = "q4_k_m")]
    Q4KM,
    /// Plain 4-bit blocks.
    #[value(name = "q4_0")]
    Q4_0,
    /// 5-bit k-quant mix.
    #[value(name = "q5_k_m")]
    Q5KM,
}

impl QuantType {
    pub const ALL: [QuantType; 5] = [
        QuantType::F16,
        QuantType::Q8_0,
        QuantType::Q4KM,
        QuantType::Q4_0,
        QuantType::Q5KM,
    ];

    fn ftype(self) -> llama_cpp_sys_2::llama_ftype {
        match self {
            QuantType::F16 => llama_cpp_sys_2::LLAMA_FTYPE_MOSTLY_F16,
            QuantType::Q8_0 => llama_cpp_sys_2::LLAMA_FTYPE_MOSTLY_Q8_0,
            QuantType::Q4KM => llama_cpp_sys_2::LLAMA_FTYPE_MOSTLY_Q4_K_M,
            QuantType::Q4_0 => llama_cpp_sys_2::LLAMA_FTYPE_MOSTLY_Q4_0,
            QuantType::Q5KM => llama_cpp_sys_2::LLAMA_FTYPE_MOSTLY_Q5_K_M,
        }
    }

    /// The CLI spelling (`q4_k_m`).
    pub fn as_str(self) -> &'static str {
        match self {
            QuantType::F16 => "f16",
            QuantType::Q8_0 => "q8_0",
            QuantType::Q4KM => "q4_k_m",
            QuantType::Q4_0 => "q4_0",
            QuantType::Q5KM => "q5_k_m",
        }
    }
}

/// Arguments of `kefu models quantize`.
#[derive(Debug, Clone, clap::Args)]
pub struct QuantizeArgs {
    /// The GGUF model to convert.
    #[arg(long, value_name = "GGUF")]
    pub input: PathBuf,
    /// Target encoding.
    #[arg(long = "to", value_enum)]
    pub to: QuantType,
    /// Where to write the converted GGUF (never the input).
    #[arg(long, value_name = "GGUF")]
    pub out: PathBuf,
    /// Convert an input that is already quantized. Its quality cannot come back: an F16 made
    /// from a Q4_1 file holds Q4_1 quality in twice the space.
    #[arg(long)]
    pub allow_requantize: bool,
    /// Replace an existing output file (never the input).
    #[arg(long)]
    pub force: bool,
    /// CPU threads (default: all cores).
    #[arg(long)]
    pub threads: Option<i32>,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

impl QuantizeArgs {
    pub fn new(input: impl Into<PathBuf>, to: QuantType, out: impl Into<PathBuf>) -> Self {
        Self {
            input: input.into(),
            to,
            out: out.into(),
            allow_requantize: false,
            force: false,
            threads: None,
            quiet: true,
        }
    }
}

/// What a quantization did.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct QuantizeOutcome {
    pub input: PathBuf,
    pub output: PathBuf,
    pub to: QuantType,
    pub input_info: GgufInfo,
    pub output_info: GgufInfo,
    pub input_bytes: u64,
    pub output_bytes: u64,
    pub seconds: f64,
    /// The input already held quantized tensors.
    pub requantized: bool,
}

impl QuantizeOutcome {
    /// One line for the terminal.
    pub fn summary(&self) -> String {
        format!(
            "{} ({}, {:.1} MB) -> {} ({}, {:.1} MB, {:.2}x) in {:.1} s",
            self.input.display(),
            self.input_info.label(),
            self.input_bytes as f64 / 1e6,
            self.output.display(),
            self.output_info.label(),
            self.output_bytes as f64 / 1e6,
            self.output_bytes as f64 / self.input_bytes.max(1) as f64,
            self.seconds
        )
    }
}

/// Runs `kefu models quantize`: checks, converts, prints the outcome.
pub fn run_quantize(args: &QuantizeArgs) -> Result<QuantizeOutcome> {
    let outcome = quantize(args)?;
    println!("{}", outcome.summary());
    Ok(outcome)
}

/// Converts `args.input` to `args.to` at `args.out`. See the module docs for the guard rails.
pub fn quantize(args: &QuantizeArgs) -> Result<QuantizeOutcome> {
    let input = &args.input;
    anyhow::ensure!(input.is_file(), "no model file at {}", input.display());
    if same_file(input, &args.out)? {
        bail!(
            "--out {} is the input file; choose another output path",
            args.out.display()
        );
    }
    if args.out.exists() && !args.force {
        bail!(
            "{} already exists; pass --force to replace it",
            args.out.display()
        );
    }
    let input_info = inspect(input)?;
    let requantized = input_info.quantized;
    if requantized {
        if !args.allow_requantize {
            bail!(
                "{} is already quantized ({}): converting it again cannot restore what the first \
                 quantization lost (an F16 made from it holds only {} quality); pass \
                 --allow-requantize to convert it anyway",
                input.display(),
                input_info.label(),
                input_info.label()
            );
        }
        tracing::warn!(
            input = %input.display(),
            from = %input_info.label(),
            "requantizing an already quantized model: quality cannot exceed the input's"
        );
    }
    // Quantization needs llama.cpp's backend (ggml's lookup tables) initialised.
    kefu_engine::backend();

    let partial = partial_path(&args.out);
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get() as i32));
    let bar = if args.quiet {
        ProgressBar::hidden()
    } else {
        let bar = ProgressBar::new(input_info.tensors as u64);
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} quantizing to {prefix} [{bar:30}] {pos}/{len} tensors {elapsed} {msg}",
            )
            .expect("static template")
            .progress_chars("=> "),
        );
        bar.set_prefix(args.to.as_str());
        bar
    };
    let started = Instant::now();
    let result = run_llama_quantize(input, &partial, args.to, threads, &|done, name| {
        bar.set_position(done as u64);
        bar.set_message(name.to_string());
    });
    let seconds = started.elapsed().as_secs_f64();
    bar.finish_and_clear();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&partial);
        return Err(e);
    }
    std::fs::rename(&partial, &args.out)
        .with_context(|| format!("moving {} to {}", partial.display(), args.out.display()))?;
    let output_info = inspect(&args.out)?;
    Ok(QuantizeOutcome {
        input: input.clone(),
        output: args.out.clone(),
        to: args.to,
        input_bytes: std::fs::metadata(input)?.len(),
        output_bytes: std::fs::metadata(&args.out)?.len(),
        input_info,
        output_info,
        seconds,
        requantized,
    })
}

/// Whether `a` and `b` name the same file (`b` need not exist).
fn same_file(a: &Path, b: &Path) -> Result<bool> {
    let a = a
        .canonicalize()
        .with_context(|| format!("resolving {}", a.display()))?;
    if let Ok(b) = b.canonicalize() {
        return Ok(a == b);
    }
    let parent = match b.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let Ok(parent) = parent.canonicalize() else {
        return Ok(false);
    };
    Ok(b.file_name().is_some_and(|name| parent.join(name) == a))
}

fn partial_path(out: &Path) -> PathBuf {
    let mut name = out.file_name().unwrap_or_default().to_os_string();
    name.push(".partial");
    out.with_file_name(name)
}

/// Progress reporter: tensors done so far and the current tensor's name.
type Progress<'a> = dyn Fn(usize, &str) + Sync + 'a;

fn run_llama_quantize(
    input: &Path,
    output: &Path,
    to: QuantType,
    threads: i32,
    progress: &Progress<'_>,
) -> Result<()> {
    let c_in = CString::new(input.as_os_str().as_encoded_bytes()).context("input path")?;
    let c_out = CString::new(output.as_os_str().as_encoded_bytes()).context("output path")?;
    // SAFETY: plain struct from llama.cpp's defaults; only scalar fields are changed.
    let mut params = unsafe { llama_cpp_sys_2::llama_model_quantize_default_params() };
    params.ftype = to.ftype();
    params.nthread = threads;
    params.allow_requantize = true; // the caller has checked consent
    let _logs = LogCapture::install(progress);
    // SAFETY: valid C strings and params that outlive the call.
    let rc =
        unsafe { llama_cpp_sys_2::llama_model_quantize(c_in.as_ptr(), c_out.as_ptr(), &params) };
    if rc != 0 {
        bail!(
            "llama.cpp could not quantize {} to {} (code {rc}; set KEFU_LLAMA_LOG=1 for its log)",
            input.display(),
            to.as_str()
        );
    }
    Ok(())
}

/// Routes llama.cpp's log to a progress reporter while alive; restores kefu's usual logging
/// (silent, or llama.cpp's default stderr logger with `KEFU_LLAMA_LOG`) when dropped.
struct LogCapture<'a> {
    _progress: std::marker::PhantomData<&'a Progress<'a>>,
}

/// What the log callback's user data points to.
struct Sink<'a> {
    progress: &'a Progress<'a>,
    echo: bool,
}

impl<'a> LogCapture<'a> {
    fn install(progress: &'a Progress<'a>) -> Self {
        let sink = Box::new(Sink {
            progress,
            echo: std::env::var_os("KEFU_LLAMA_LOG").is_some(),
        });
        let ptr = Box::into_raw(sink);
        CURRENT.store(ptr.cast(), std::sync::atomic::Ordering::SeqCst);
        // SAFETY: the callback only dereferences `ptr`, which stays valid until `drop` swaps
        // the callback out and frees it.
        unsafe { llama_cpp_sys_2::llama_log_set(Some(on_log), ptr.cast::<c_void>()) };
        LogCapture {
            _progress: std::marker::PhantomData,
        }
    }
}

/// The sink installed now (null when none); freed by `LogCapture::drop`.
static CURRENT: std::sync::atomic::AtomicPtr<c_void> =
    std::sync::atomic::AtomicPtr::new(std::ptr::null_mut());

impl Drop for LogCapture<'_> {
    fn drop(&mut self) {
        unsafe {
            if std::env::var_os("KEFU_LLAMA_LOG").is_some() {
                llama_cpp_sys_2::llama_log_set(None, std::ptr::null_mut());
            } else {
                llama_cpp_sys_2::llama_log_set(Some(silent), std::ptr::null_mut());
            }
        }
        let ptr = CURRENT.swap(std::ptr::null_mut(), std::sync::atomic::Ordering::SeqCst);
        if !ptr.is_null() {
            // SAFETY: created by `Box::into_raw` in `install`; no callback refers to it now.
            drop(unsafe { Box::from_raw(ptr.cast::<Sink<'_>>()) });
        }
    }
}

unsafe extern "C" fn silent(
    _level: llama_cpp_sys_2::ggml_log_level,
    _text: *const std::os::raw::c_char,
    _user_data: *mut c_void,
) {
}

unsafe extern "C" fn on_log(
    _level: llama_cpp_sys_2::ggml_log_level,
    text: *const std::os::raw::c_char,
    user_data: *mut c_void,
) {
    if text.is_null() || user_data.is_null() {
        return;
    }
    // SAFETY: see `LogCapture::install`.
    let sink = unsafe { &*user_data.cast::<Sink<'_>>() };
    let text = unsafe { CStr::from_ptr(text) }.to_string_lossy();
    if sink.echo {
        eprint!("{text}");
    }
    if let Some((done, name)) = parse_tensor_line(&text) {
        (sink.progress)(done, name);
    }
}

/// Parses llama.cpp's per-tensor line `[  12/ 273]   blk.0.attn_k.weight - [...]`.
fn parse_tensor_line(text: &str) -> Option<(usize, &str)> {
    let rest = text.trim_start().strip_prefix('[')?;
    let (counts, rest) = rest.split_once(']')?;
    let (done, _total) = counts.split_once('/')?;
    let done = done.trim().parse().ok()?;
    let name = rest.split_whitespace().next().unwrap_or("");
    Some((done, name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_tensor_progress_lines() {
        assert_eq!(
            parse_tensor_line("[   3/ 273]                   blk.0.attn_k.weight - [  576,"),
            Some((3, "blk.0.attn_k.weight"))
        );
        assert_eq!(
            parse_tensor_line("llama_model_quantize_impl: model size"),
            None
        );
    }

    #[test]
    fn partial_name_is_beside_the_target() {
        assert_eq!(
            partial_path(Path::new("models/a.gguf")),
            PathBuf::from("models/a.gguf.partial")
        );
    }

    #[test]
    fn cli_spellings_round_trip() {
        for t in QuantType::ALL {
            assert_eq!(QuantType::from_str(t.as_str(), false).unwrap(), t);
        }
    }
}
