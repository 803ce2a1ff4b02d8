"""Fast generation: drive a model's setup + static-shape step, optionally compiled or CUDA-graphed.

Both AR models implement one generation interface (`ARBackbone`: `setup` -> condition to AdaLN
parameters, static KV cache, output buffers; `generation_plan`; a per-scale / per-token `step`
that never reads a tensor on the host; `codes`). `FastGenerator` runs that loop itself so it can

- compile with `torch.compile` (`compile=True`). A short plan (AAR: one step per scale, 16) compiles
  as one graph: setup, every step and the codes, with KV caches that grow by concatenation (inductor
  would copy a whole preallocated cache at every in-place write). Per-step graphs were slower than eager on CPU: dynamo
  keeps one cached graph per scale and checks their guards in turn before each call, ~1 ms per step
  for a tiny model. A long plan (the next-token baselines, 455 / 750 steps) compiles its step instead,
  in its static form (whole-cache attention with a causal row mask, the CFG weight as a 0-d tensor),
  so it becomes a couple of graphs instead of one per position. Eager next-token steps attend to the
  filled prefix only, its fastest form. The sampler's draw from a `torch.Generator` is not traceable
  by dynamo, so this loop draws every step's uniforms first (the same calls on the same generator, in
  step order, so the same numbers) and hands them to the steps: no graph breaks. The tokens are eager's
  bit for bit when the compiled graph computes the logits bit for bit (backend "aot_eager"). Inductor
  fuses and reorders float32 arithmetic: logits differ by ~1e-8, and a near tie in the sampler (two
  logits within that of each other swap ranks, or the draw sits on a cdf boundary) can pick another
  token, after which the clips part. Measured: the tiny AAR's tokens equal eager's (tests); a random-weight
  tiny next-token model (455 steps, flat logits) parted at token 428;
- capture the whole generation — setup, every step, sampling — as one CUDA graph (`cuda_graph=True`),
  replayed for each new condition copied into a static buffer. Random numbers stay reproducible: the
  generator is registered with the graph (graph-safe Philox), so seeding it before a call fixes the
  tokens. Condition vectors are needed for capture: class ids are range-checked on the host.

The baseline gets the same options as AAR, each in the form that suits a plan of its length, so a
speed ratio compares like with like.
"""
from __future__ import annotations

from typing import Any, Callable

import torch
from torch import Tensor, nn

from ..errors import ConfigError, NextscaleError
from .config import Quantizer
from .sampling import noise_width, uniform_noise
from .transformer import ARBackbone


WHOLE_GENERATION_STEPS = 64   # plans up to this many steps compile as one graph; longer ones step by step


def raise_compile_limits(steps: int) -> None:
    """AAR compiles one graph per scale; dynamo's default cache (8 graphs) would fall back to eager."""
    import torch._dynamo

    conf = torch._dynamo.config
    for name in ("recompile_limit", "cache_size_limit"):
        if hasattr(conf, name):
            setattr(conf, name, max(getattr(conf, name), steps + 8))
    if hasattr(conf, "accumulated_recompile_limit"):
        conf.accumulated_recompile_limit = max(conf.accumulated_recompile_limit, 4 * (steps + 8))


def compile_options(model: nn.Module, backend: str | Callable, mode: str | None) -> dict[str, Any] | None:
    """Inductor options for a model on CPU: the C++ wrapper, which calls a generation's hundreds of small
    kernels from C++ rather than Python (tiny AAR at batch 1: 33 -> 28 ms per clip, eager 45 ms, on a
    loaded 2-core VM). None elsewhere, and when a `mode` is given (torch takes a mode or options)."""
    if backend != "inductor" or mode is not None or next(model.parameters()).device.type != "cpu":
        return None
    return {"cpp_wrapper": True}


class FastGenerator:
    """`gen(cond, generator) -> list of K LongTensors (B, n_k)`, like `model.generate`, but faster.

    compile: torch.compile the generation (a short plan) or its step (a long one); `backend` and `mode`
    are passed through (backend="aot_eager" checks graph capture cheaply on CPU). cuda_graph: capture
    the whole generation once per (batch, dtype, generator) and replay it. Both draw eager generation's
    random numbers for a seed (inductor's float rounding can still part the tokens: module docstring).
    """

    def __init__(self, model: nn.Module, quantizer: Quantizer, *, cfg: float = 4.0, top_k: int = 200,
                 top_p: float = 0.95, temperature: float = 1.0, compile: bool = False,
                 cuda_graph: bool = False, backend: str | Callable = "inductor", mode: str | None = None):
        if not isinstance(model, ARBackbone):
            raise ConfigError(f"fast generation: unsupported model kind {getattr(model, 'kind', None)!r} "
                              f"({type(model).__name__} is not an AR model: expected AAR or NextTokenAR)")
        self.model, self.quantizer = model, quantizer
        self.plan = model.generation_plan(cfg)        # host-side, once: before any timed or captured loop
        self.static = compile or cuda_graph           # the next-token step in its fixed-shape form
        self.guided = cfg != 0
        self.sampling = (top_k, top_p, temperature)
        self.compiled = compile
        self.cuda_graph = cuda_graph
        self.compile_scope = None if not compile else (
            "generation" if len(self.plan) <= WHOLE_GENERATION_STEPS else "step")
        self._step: Callable[..., tuple[Tensor, Tensor]] = model.step
        self._generate: Callable[..., list[Tensor]] = self.generate_from_noise
        self._weights: Tensor | None = None
        if compile:
            raise_compile_limits(len(self.plan))
            options = compile_options(model, backend, mode)
            if self.compile_scope == "generation":
                self._generate = torch.compile(self.generate_from_noise, backend=backend, mode=mode, options=options)
            else:
                self._step = torch.compile(model.step, backend=backend, mode=mode, options=options)
        self._graph: torch.cuda.CUDAGraph | None = None
        self._graph_key: tuple | None = None
        self._static_cond: Tensor | None = None
        self._static_context: Tensor | None = None
        self._static_codes: list[Tensor] = []

    @property
    def steps(self) -> int:
        """Sequential steps per clip (16 for AAR, 455 / 750 for the baselines)."""
        return len(self.plan)

    def _guidance(self, device: torch.device) -> list[Any]:
        """CFG weights per step: python floats, or 0-d tensors when compiled (no recompile per weight)."""
        floats = [t for _, t in self.plan]
        if not self.compiled:
            return floats
        if self._weights is None or self._weights.device != device:
            self._weights = torch.tensor(floats, dtype=torch.float32, device=device)
        return list(self._weights.unbind(0))

    @torch.no_grad()
    def run(self, cond: Tensor, generator: torch.Generator | None = None, context: Tensor | None = None) -> list[Tensor]:
        """One generation through the (possibly compiled) loop, without graph capture; `context` is the
        previous window's latent for a model with context tokens."""
        if self.compile_scope == "generation":
            self.model.cond_embed.check(cond)       # the compiled setup skips it: its host read would split the graph
        noises = self.noises(cond.shape[0], cond.device, generator)
        return self._generate(cond, context, self._guidance(cond.device), noises)

    def generate_from_noise(self, cond: Tensor, context: Tensor | None, weights: list[Any],
                            noises: list[Tensor | None]) -> list[Tensor]:
        """Setup, every step of the plan with its CFG weight and uniforms, codes: what a short plan compiles."""
        top_k, top_p, temperature = self.sampling
        state = self.model.setup(self.quantizer, cond, self.guided, static=self.static, context=context,
                                 growing=self.compile_scope == "generation")
        outputs = [self._step(state, self.quantizer, index, t, top_k, top_p, temperature, None, noise)[0]
                   for (index, _), t, noise in zip(self.plan, weights, noises)]
        return self.model.codes(state, outputs)

    def noises(self, batch: int, device: torch.device, generator: torch.Generator | None) -> list[Tensor | None]:
        """The uniforms every step would draw from `generator`, drawn here in step order (None when greedy)."""
        width = noise_width(self.model.config.codebook_size, *self.sampling)
        return [uniform_noise((batch, self.model.step_length(index), width), device, generator) if width else None
                for index, _ in self.plan]

    def __call__(self, cond: Tensor, generator: torch.Generator | None = None,
                 context: Tensor | None = None) -> list[Tensor]:
        if not self.cuda_graph:
            return self.run(cond, generator, context)
        return self.replay(cond, generator, context)

    # ---- CUDA graph ----------------------------------------------------------------------------
    def replay(self, cond: Tensor, generator: torch.Generator | None = None,
               context: Tensor | None = None) -> list[Tensor]:
        """Copy `cond` (and `context`) into static buffers and replay the captured generation (capturing first).

        With and without a context are two different graphs (the null context is a parameter, not an input).
        """
        if cond.device.type != "cuda":
            raise NextscaleError("--cuda-graph needs the model and the condition on a CUDA device")
        key = (tuple(cond.shape), cond.dtype, id(generator), None if context is None else tuple(context.shape))
        if self._graph is None or self._graph_key != key:
            self.capture(cond, generator, context=context)
            self._graph_key = key
        self._static_cond.copy_(cond)
        if context is not None:
            self._static_context.copy_(context)
        self._graph.replay()
        return [c.clone() for c in self._static_codes]

    def capture(self, cond: Tensor, generator: torch.Generator | None = None, warmup: int = 2,
                context: Tensor | None = None) -> None:
        """Warm up on a side stream (compiles, allocator), then record one whole generation."""
        self._static_cond = cond.clone()
        self._static_context = None if context is None else context.clone()
        side = torch.cuda.Stream(cond.device)
        side.wait_stream(torch.cuda.current_stream(cond.device))
        with torch.cuda.stream(side):
            for _ in range(warmup):
                self.run(self._static_cond, generator, self._static_context)
        torch.cuda.current_stream(cond.device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        if generator is not None:
            graph.register_generator_state(generator)
        try:
            with torch.cuda.graph(graph):
                self._static_codes = self.run(self._static_cond, generator, self._static_context)
        except RuntimeError as e:
            raise NextscaleError(
                f"CUDA-graph capture of {self.model.kind} generation failed ({e}); the step must not "
                "synchronise with the host (class-id conditions are range-checked on the host: pass "
                "condition vectors, or run without --cuda-graph)") from e
        self._graph = graph
