"""Fast generation: drive a model's setup + static-shape step, optionally compiled or CUDA-graphed.

Both AR models implement one generation interface (`ARBackbone`: `setup` -> condition to AdaLN
parameters, static KV cache, output buffers; `generation_plan`; a per-scale / per-token `step`
that never reads a tensor on the host; `codes`). `FastGenerator` runs that loop itself so it can

- wrap the step with `torch.compile` (`compile=True`): AAR compiles one graph per scale (shapes
  differ per scale); the next-token step runs in its static form (whole-cache attention with a causal
  row mask) and gets its CFG weight as a 0-d tensor, so it compiles to a couple of graphs instead
  of one per position. Eager next-token steps attend to the filled prefix only, its fastest form. The sampler's draw from a `torch.Generator` is not traceable by dynamo: the
  step compiles as a graph before and after the draw, and the tokens equal eager ones bit for bit;
- capture the whole generation — setup, every step, sampling — as one CUDA graph (`cuda_graph=True`),
  replayed for each new condition copied into a static buffer. Random numbers stay reproducible: the
  generator is registered with the graph (graph-safe Philox), so seeding it before a call fixes the
  tokens. Condition vectors are needed for capture: class ids are range-checked on the host.

The baseline gets exactly the same treatment as AAR, so a speed ratio compares like with like.
"""
from __future__ import annotations

from typing import Any, Callable

import torch
from torch import Tensor, nn

from ..errors import ConfigError, NextscaleError
from .config import Quantizer
from .transformer import ARBackbone


def raise_compile_limits(steps: int) -> None:
    """AAR compiles one graph per scale; dynamo's default cache (8 graphs) would fall back to eager."""
    import torch._dynamo

    conf = torch._dynamo.config
    for name in ("recompile_limit", "cache_size_limit"):
        if hasattr(conf, name):
            setattr(conf, name, max(getattr(conf, name), steps + 8))
    if hasattr(conf, "accumulated_recompile_limit"):
        conf.accumulated_recompile_limit = max(conf.accumulated_recompile_limit, 4 * (steps + 8))


class FastGenerator:
    """`gen(cond, generator) -> list of K LongTensors (B, n_k)`, like `model.generate`, but faster.

    compile: torch.compile the per-step function (`backend`, `mode` passed through; use
    backend="aot_eager" for a cheap check of graph capture on CPU). cuda_graph: capture the whole
    generation once per (batch, dtype, generator) and replay it. Both keep the tokens of eager
    generation for the same seed.
    """

    def __init__(self, model: nn.Module, quantizer: Quantizer, *, cfg: float = 4.0, top_k: int = 200,
                 top_p: float = 0.95, temperature: float = 1.0, compile: bool = False,
                 cuda_graph: bool = False, backend: str = "inductor", mode: str | None = None):
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
        self._step: Callable[..., tuple[Tensor, Tensor]] = model.step
        self._weights: Tensor | None = None
        if compile:
            raise_compile_limits(len(self.plan))
            self._step = torch.compile(model.step, backend=backend, mode=mode)
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
        """One generation through the (possibly compiled) step, without graph capture; `context` is the
        previous window's latent for a model with context tokens."""
        top_k, top_p, temperature = self.sampling
        state = self.model.setup(self.quantizer, cond, self.guided, static=self.static, context=context)
        weights = self._guidance(cond.device)
        outputs = [self._step(state, self.quantizer, index, t, top_k, top_p, temperature, generator)[0]
                   for (index, _), t in zip(self.plan, weights)]
        return self.model.codes(state, outputs)

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
