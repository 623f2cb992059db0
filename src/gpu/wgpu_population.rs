//! The population kernel on wgpu (`--features wgpu`): the emitted WGSL (`Dialect::Wgsl`),
//! validated by naga, compiled into one compute pipeline and dispatched over a
//! (rows / 64, candidates) grid. This is the same wgpu burn-wgpu runs on (Vulkan, Metal, DX12;
//! Mesa's lavapipe without a GPU, which is how CI tests it).
//!
//! The adapter and device are opened once per process and shared by every kernel built
//! (training builds one per population).
//!
//! A batch larger than the device's storage-binding limit for K candidates' gradients runs in
//! row chunks, each with its own buffers; the loss shares come back per row and the host adds
//! them in row order, as for the C backends. wgpu's errors are captured and returned, never
//! the default handler's panic.

use super::emit::{LossFinish, Population};
use super::{Inputs, PopulationRunner};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;
use wgpu::util::DeviceExt;

/// Why the wgpu path failed.
#[derive(Clone, Debug, thiserror::Error)]
pub enum WgpuError {
    /// No adapter: no Vulkan loader, or no driver.
    #[error("no GPU adapter ({0}); {HINT}")]
    NoAdapter(String),
    /// The adapter refused a device.
    #[error("the adapter `{adapter}` gave no device: {what}")]
    Device {
        /// The adapter's name.
        adapter: String,
        /// wgpu's message.
        what: String,
    },
    /// The emitted WGSL did not parse or validate (naga's report, with the line).
    #[error("the emitted WGSL does not validate: {0}")]
    Shader(String),
    /// wgpu reported an error while running.
    #[error("wgpu: {0}")]
    Run(String),
    /// The inputs do not fit.
    #[error("inputs: {0}")]
    Inputs(String),
}

const HINT: &str = "wgpu needs a Vulkan loader (libvulkan1) and a driver: Mesa's lavapipe (mesa-vulkan-drivers) where there is no GPU, or the NVIDIA driver's ICD (set VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json where the loader does not find it); scripts/gpu-check.sh carries both";

/// Parse and validate WGSL with naga (what wgpu does before compiling it), without a device.
pub fn validate(source: &str) -> Result<(), WgpuError> {
    let module = naga::front::wgsl::parse_str(source)
        .map_err(|e| WgpuError::Shader(e.emit_to_string(source)))?;
    naga::valid::Validator::new(
        naga::valid::ValidationFlags::all(),
        naga::valid::Capabilities::empty(),
    )
    .validate(&module)
    .map_err(|e| WgpuError::Shader(e.emit_to_string(source)))?;
    Ok(())
}

/// A population kernel compiled on the first wgpu adapter.
pub struct WgpuPopulation {
    device: wgpu::Device,
    queue: wgpu::Queue,
    pipeline: wgpu::ComputePipeline,
    layout: wgpu::BindGroupLayout,
    errors: Arc<Mutex<Vec<String>>>,
    adapter: String,
    max_rows: usize,
    finish: Vec<LossFinish>,
    c: usize,
}

/// One chunk of rows resident on the device: inputs, outputs and their bind group.
struct Chunk {
    rows: usize,
    grads: wgpu::Buffer,
    shares: wgpu::Buffer,
    bind: wgpu::BindGroup,
}

const WORKGROUP: usize = 64;

/// The process's wgpu device, opened on first use and shared by every kernel: opening an
/// adapter and a device costs more than compiling a small kernel, and training builds one
/// kernel per population. Errors the device reports outside an error scope go to one sink,
/// which the next kernel to check it reports.
#[derive(Clone)]
struct Shared {
    device: wgpu::Device,
    queue: wgpu::Queue,
    errors: Arc<Mutex<Vec<String>>>,
    adapter: String,
    limits: wgpu::Limits,
}

static SHARED: OnceLock<Result<Shared, WgpuError>> = OnceLock::new();

fn open() -> Result<Shared, WgpuError> {
    let instance = wgpu::Instance::new(wgpu::InstanceDescriptor {
        backends: wgpu::Backends::from_env().unwrap_or(wgpu::Backends::PRIMARY),
        ..wgpu::InstanceDescriptor::new_without_display_handle()
    });
    let adapter =
        futures_lite::future::block_on(instance.request_adapter(&wgpu::RequestAdapterOptions {
            power_preference: wgpu::PowerPreference::HighPerformance,
            ..Default::default()
        }))
        .map_err(|e| WgpuError::NoAdapter(e.to_string()))?;
    let info = adapter.get_info();
    let name = format!("{} ({:?}, {:?})", info.name, info.backend, info.device_type);
    let limits = adapter.limits();
    let (device, queue) =
        futures_lite::future::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("ncpc population"),
            required_limits: limits.clone(),
            ..Default::default()
        }))
        .map_err(|e| WgpuError::Device {
            adapter: name.clone(),
            what: e.to_string(),
        })?;
    let errors = Arc::new(Mutex::new(Vec::new()));
    let sink = errors.clone();
    device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
        if let Ok(mut v) = sink.lock() {
            v.push(e.to_string());
        }
    }));
    Ok(Shared {
        device,
        queue,
        errors,
        adapter: name,
        limits,
    })
}

/// Validate `pop` (emitted with `Dialect::Wgsl`) and compile it on the process's wgpu device
/// (the first adapter, opened by the first build).
pub fn build(pop: &Population) -> Result<WgpuPopulation, WgpuError> {
    validate(&pop.source)?;
    let Shared {
        device,
        queue,
        errors,
        adapter: name,
        limits,
    } = SHARED.get_or_init(open).clone()?;
    let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
    let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
        label: Some("ncpc population"),
        source: wgpu::ShaderSource::Wgsl(pop.source.as_str().into()),
    });
    let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
        label: Some("ncpc population"),
        layout: None,
        module: &module,
        entry_point: Some("ncp_population"),
        compilation_options: Default::default(),
        cache: None,
    });
    if let Some(e) = futures_lite::future::block_on(scope.pop()) {
        return Err(WgpuError::Shader(e.to_string()));
    }
    let layout = pipeline.get_bind_group_layout(0);
    let k = pop.finish.len().max(1);
    let per_row = (k * pop.c * 4) as u64;
    let binding = limits
        .max_storage_buffer_binding_size
        .min(limits.max_buffer_size);
    let max_rows = ((binding / per_row) as usize)
        .min(limits.max_compute_workgroups_per_dimension as usize * WORKGROUP)
        .max(1);
    if k > limits.max_compute_workgroups_per_dimension as usize {
        return Err(WgpuError::Inputs(format!(
            "{k} candidates (this device dispatches at most {})",
            limits.max_compute_workgroups_per_dimension
        )));
    }
    Ok(WgpuPopulation {
        device,
        queue,
        pipeline,
        layout,
        errors,
        adapter: name,
        max_rows,
        finish: pop.finish.clone(),
        c: pop.c,
    })
}

fn bytes(x: &[f32]) -> Vec<u8> {
    x.iter().flat_map(|v| v.to_le_bytes()).collect()
}

impl WgpuPopulation {
    /// The adapter's name, API and type (a lavapipe run says `Cpu`).
    pub fn adapter(&self) -> &str {
        &self.adapter
    }

    fn check_errors(&self) -> Result<(), WgpuError> {
        let mut v = self
            .errors
            .lock()
            .map_err(|e| WgpuError::Run(e.to_string()))?;
        if v.is_empty() {
            Ok(())
        } else {
            Err(WgpuError::Run(std::mem::take(&mut *v).join("; ")))
        }
    }

    fn check_inputs(
        &self,
        inputs: Inputs,
        y_pred: &[f32],
        y_true: &[f32],
        b: usize,
    ) -> Result<(), WgpuError> {
        super::check_batch(self.finish.len(), self.c, inputs, y_pred, y_true, b)
            .map(|_| ())
            .map_err(WgpuError::Inputs)
    }

    /// The batch on the device, in chunks of at most `max_rows` rows; with a batch per
    /// candidate, a chunk holds every candidate's rows of the chunk, candidate after candidate.
    fn upload(&self, inputs: Inputs, y_pred: &[f32], y_true: &[f32], b: usize) -> Vec<Chunk> {
        let (k, c) = (self.finish.len(), self.c);
        let storage = wgpu::BufferUsages::STORAGE;
        let out = storage | wgpu::BufferUsages::COPY_SRC;
        (0..b)
            .step_by(self.max_rows)
            .map(|first| {
                let rows = self.max_rows.min(b - first);
                // This chunk's rows of the inputs, and the values between two candidates'.
                let (gather, stride) = match inputs {
                    Inputs::Shared => {
                        let span = first * c..(first + rows) * c;
                        let one = |x: &[f32]| bytes(&x[span.clone()]);
                        ((one(y_pred), one(y_true)), 0)
                    }
                    Inputs::PerCandidate => {
                        let each = |x: &[f32]| -> Vec<u8> {
                            (0..k)
                                .flat_map(|j| {
                                    let at = j * b * c;
                                    bytes(&x[at + first * c..at + (first + rows) * c])
                                })
                                .collect()
                        };
                        ((each(y_pred), each(y_true)), rows * c)
                    }
                };
                let init = |label, data: &[u8], usage| {
                    self.device
                        .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                            label: Some(label),
                            contents: data,
                            usage,
                        })
                };
                let yp = init("y_pred", &gather.0, storage);
                let yt = init("y_true", &gather.1, storage);
                let params: Vec<u8> = [b as u32, rows as u32, stride as u32, 0]
                    .iter()
                    .flat_map(|v| v.to_le_bytes())
                    .collect();
                let params = init("sizes", &params, wgpu::BufferUsages::UNIFORM);
                let alloc = |label, n: usize| {
                    self.device.create_buffer(&wgpu::BufferDescriptor {
                        label: Some(label),
                        size: (n * 4) as u64,
                        usage: out,
                        mapped_at_creation: false,
                    })
                };
                let grads = alloc("gradients", k * rows * c);
                let shares = alloc("loss shares", k * rows);
                let bind = self.device.create_bind_group(&wgpu::BindGroupDescriptor {
                    label: Some("population"),
                    layout: &self.layout,
                    entries: &[&yp, &yt, &grads, &shares, &params]
                        .iter()
                        .enumerate()
                        .map(|(i, buf)| wgpu::BindGroupEntry {
                            binding: i as u32,
                            resource: buf.as_entire_binding(),
                        })
                        .collect::<Vec<_>>(),
                });
                Chunk {
                    rows,
                    grads,
                    shares,
                    bind,
                }
            })
            .collect()
    }

    /// One evaluation of every candidate over every chunk, as commands.
    fn encode(&self, chunks: &[Chunk], encoder: &mut wgpu::CommandEncoder) {
        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor::default());
        pass.set_pipeline(&self.pipeline);
        for ch in chunks {
            pass.set_bind_group(0, &ch.bind, &[]);
            pass.dispatch_workgroups(
                ch.rows.div_ceil(WORKGROUP) as u32,
                self.finish.len() as u32,
                1,
            );
        }
    }

    fn wait(&self) -> Result<(), WgpuError> {
        self.device
            .poll(wgpu::PollType::Wait {
                submission_index: None,
                timeout: None,
            })
            .map_err(|e| WgpuError::Run(e.to_string()))?;
        self.check_errors()
    }

    /// Seconds per evaluation of the whole population with the batch already on the device
    /// (no transfers): `iters` evaluations submitted back to back, after one to warm up.
    pub fn time_resident(
        &self,
        y_pred: &[f32],
        y_true: &[f32],
        b: usize,
        iters: usize,
    ) -> Result<f64, WgpuError> {
        self.check_inputs(Inputs::Shared, y_pred, y_true, b)?;
        let chunks = self.upload(Inputs::Shared, y_pred, y_true, b);
        let submit = || {
            let mut encoder = self.device.create_command_encoder(&Default::default());
            self.encode(&chunks, &mut encoder);
            self.queue.submit([encoder.finish()]);
        };
        submit();
        self.wait()?;
        let t = Instant::now();
        for _ in 0..iters.max(1) {
            submit();
        }
        self.wait()?;
        Ok(t.elapsed().as_secs_f64() / iters.max(1) as f64)
    }
}

impl PopulationRunner for WgpuPopulation {
    type Error = WgpuError;

    fn run_on(
        &self,
        inputs: Inputs,
        y_pred: &[f32],
        y_true: &[f32],
        b: usize,
    ) -> Result<Vec<(f32, Vec<f32>)>, Self::Error> {
        self.check_inputs(inputs, y_pred, y_true, b)?;
        if self.finish.is_empty() {
            return Ok(Vec::new());
        }
        let (k, c) = (self.finish.len(), self.c);
        let chunks = self.upload(inputs, y_pred, y_true, b);
        let mut encoder = self.device.create_command_encoder(&Default::default());
        self.encode(&chunks, &mut encoder);
        let staging: Vec<(wgpu::Buffer, wgpu::Buffer)> = chunks
            .iter()
            .map(|ch| {
                let mut read = |src: &wgpu::Buffer| {
                    let dst = self.device.create_buffer(&wgpu::BufferDescriptor {
                        label: Some("read back"),
                        size: src.size(),
                        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                        mapped_at_creation: false,
                    });
                    encoder.copy_buffer_to_buffer(src, 0, &dst, 0, src.size());
                    dst
                };
                (read(&ch.grads), read(&ch.shares))
            })
            .collect();
        self.queue.submit([encoder.finish()]);
        for (g, s) in &staging {
            g.slice(..).map_async(wgpu::MapMode::Read, |_| ());
            s.slice(..).map_async(wgpu::MapMode::Read, |_| ());
        }
        self.wait()?;
        let mut grads = vec![vec![0f32; b * c]; k];
        let mut shares = vec![vec![0f64; b]; k];
        let mut first = 0;
        for (ch, (g, s)) in chunks.iter().zip(&staging) {
            let read = |buf: &wgpu::Buffer| -> Result<Vec<f32>, WgpuError> {
                let view = buf
                    .slice(..)
                    .get_mapped_range()
                    .map_err(|e| WgpuError::Run(e.to_string()))?;
                Ok(view
                    .chunks_exact(4)
                    .map(|w| f32::from_le_bytes([w[0], w[1], w[2], w[3]]))
                    .collect())
            };
            let (gv, sv) = (read(g)?, read(s)?);
            for j in 0..k {
                let rows = ch.rows;
                grads[j][first * c..(first + rows) * c]
                    .copy_from_slice(&gv[j * rows * c..(j + 1) * rows * c]);
                for (dst, src) in shares[j][first..first + rows]
                    .iter_mut()
                    .zip(&sv[j * rows..(j + 1) * rows])
                {
                    *dst = f64::from(*src);
                }
            }
            first += ch.rows;
        }
        Ok(grads
            .into_iter()
            .zip(&shares)
            .zip(&self.finish)
            .map(|((g, s), how)| (how.loss(s, b, c), g))
            .collect())
    }
}
