"""An in-process language model as explainer and simulator: any Hugging Face causal LM with a
chat template. No logprob API is needed: one forward pass over a batch of simulation prompts
gives every "unknown" slot's distribution.

Renormalised over "0".."10", a slot's distribution needs only the digits' logits (the softmax's
normaliser cancels). Where the tokenizer writes "10" as "1" then "0", P("10") = P("1")·P("0" |
"1") and P("1") = P("1")·(1 - P("0" | "1")), read in the same pass (slot_rows.py)."""

from __future__ import annotations

import copy
import inspect
import threading
from collections.abc import Sequence
from typing import Any

import torch
from transformers import StaticCache, StoppingCriteria, StoppingCriteriaList

from activations.explanations.errors import UnsuitableModelError
from activations.explanations.prompts import DIGITS, SimulationPrompt, simulation_prompt
from activations.explanations.results import SequenceSimulation
from activations.explanations.slot_rows import shared_length, slot_rows

MAX_PREFIXES = 4


class LocalLM:
    """A model and its tokenizer; its passes run one at a time (a lock), on whatever thread
    calls them (the server runs them on the model's own worker thread)."""

    def __init__(
        self,
        model,
        tokenizer,
        name: str,
        batch_size: int = 16,
        prefix_cache: bool = True,
        dtype: str | None = None,
    ) -> None:
        self.source = model
        self.model = _in_dtype(model, dtype)
        self.prefix_cache = prefix_cache
        self._prefixes: dict[str, tuple[list[int], Any]] = {}
        self.tokenizer = tokenizer
        self.name = name
        self.batch_size = batch_size
        self._lock = threading.Lock()
        self.digit_ids, self.ten_id, self.one_zero = self._digits()

    def _encode(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def _digits(self) -> tuple[list[int], int | None, tuple[int, int] | None]:
        if not getattr(self.tokenizer, "chat_template", None):
            raise UnsuitableModelError(
                f"model {self.name!r} has no chat template: explaining and simulating need a "
                "chat model (an instruct model's tokenizer has one)"
            )
        tab = self._encode("\t")
        ids = []
        for digit in DIGITS[:10]:
            after = self._encode("\t" + digit)
            if after[: len(tab)] != tab or len(after) != len(tab) + 1:
                raise UnsuitableModelError(
                    f"model {self.name!r}: its tokenizer does not write the digit {digit!r} as "
                    "one token after a tab; the simulator reads each digit's probability"
                )
            ids.append(after[-1])
        ten = self._encode("\t10")[len(tab) :]
        if len(ten) == 1:
            return ids, ten[0], None
        if ten == [ids[1], ids[0]]:
            return ids, None, (ids[1], ids[0])
        raise UnsuitableModelError(f"model {self.name!r}: its tokenizer writes '10' as {ten}")

    # -- prompts -------------------------------------------------------------------------------

    def render(self, messages: list[dict[str, str]], continue_final: bool) -> str:
        """The chat template's text: continuing the last (assistant) message, or opening the
        assistant's answer."""
        return self.tokenizer.apply_chat_template(
            messages,
            tokenize=False,
            continue_final_message=continue_final,
            add_generation_prompt=not continue_final,
        )

    def encode_simulation(self, prompt: SimulationPrompt) -> tuple[list[int], list[int]]:
        """The prompt's ids and each slot's token index (-1 where the tokenizer merged the
        slot with the character before it: that token is not predicted, as in
        neuron-explainer, whose parser gives it no distribution)."""
        text = self.render(prompt.messages, continue_final=True)
        content = prompt.content
        stripped = content.strip()
        base = text.rindex(stripped) - (len(content) - len(content.lstrip()))
        encoded = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        starts = {start: i for i, (start, end) in enumerate(encoded["offset_mapping"]) if end}
        return encoded["input_ids"], [starts.get(base + s, -1) for s in prompt.slots]

    # -- simulation ----------------------------------------------------------------------------

    def simulate(self, explanation: str, sequences: Sequence[Sequence[str]]):
        """neuron-explainer's all-at-once simulation of each sequence."""
        encoded = [self.encode_simulation(simulation_prompt(explanation, s)) for s in sequences]
        out: list[SequenceSimulation] = []
        for start in range(0, len(encoded), self.batch_size):
            batch = encoded[start : start + self.batch_size]
            for (ids, slots), probs in zip(batch, self.slot_distributions(batch), strict=True):
                del ids
                out.append(self._simulation(sequences[len(out)], slots, probs))
        return out

    @staticmethod
    def _simulation(tokens: Sequence[str], slots: list[int], probs: torch.Tensor):
        values, probabilities, expected = [], [], []
        for slot, row in zip(slots, probs.tolist(), strict=True):
            if slot < 0:
                values.append([])
                probabilities.append([])
                expected.append(0.0)
                continue
            values.append([float(v) for v in range(len(row))])
            probabilities.append(row)
            expected.append(float(sum(v * p for v, p in enumerate(row))))
        return SequenceSimulation(
            tokens=list(tokens),
            expected_activations=expected,
            distribution_values=values,
            distribution_probabilities=probabilities,
        )

    def _prefix(self) -> tuple[list[int], Any]:
        """The ids of what every simulation prompt begins with (the system message and the
        few-shot examples, up to a special token) and the model's cache over them, made once:
        each pass then runs only the explanation and the sequence."""
        return self._cached(simulation_prompt("x", ["x"]).messages[:-2])

    def _cached(self, messages: list[dict[str, str]]) -> tuple[list[int], Any]:
        """The ids of the messages' chat text and the model's cache over them, computed on
        first use and kept (a few: the simulator's and the explainer's few-shot beginnings,
        the same for every neuron)."""
        text = self.tokenizer.apply_chat_template(messages, tokenize=False)
        found = self._prefixes.get(text)
        if found is None:
            ids = self._encode(text)
            out = self.model.get_decoder()(
                input_ids=torch.tensor([ids], device=self.model.device), use_cache=True
            )
            while len(self._prefixes) >= MAX_PREFIXES:
                self._prefixes.pop(next(iter(self._prefixes)))
            found = self._prefixes[text] = (ids, _cache_of(out))
        return found

    @torch.inference_mode()
    def slot_distributions(self, batch: list[tuple[list[int], list[int]]]) -> list[torch.Tensor]:
        """Per prompt, [slots, 11]: P(value | prompt up to the slot), renormalised over 0-10;
        one pass over the prompts' tails after their shared beginning (slot_rows.py)."""
        with self._lock:
            shared, cache = self._shared_cache(batch)
            one = self.one_zero[0] if self.one_zero is not None else None
            rows = slot_rows(batch, shared, one, self.tokenizer.pad_token_id or 0)
            body = self.model.get_decoder()
            device = self.model.device
            extra = _cache_argument(body.forward, cache) if cache is not None else {}
            hidden = body(
                input_ids=rows.ids.to(device),
                position_ids=rows.positions.to(device),
                attention_mask=rows.bias(self.model.dtype).to(device),
                use_cache=cache is not None,
                **extra,
            ).last_hidden_state
            before = torch.cat([hidden[b, i] for b, i in enumerate(rows.before)])
            head = self.model.get_output_embeddings()
            wanted = self.digit_ids + ([self.ten_id] if self.ten_id is not None else [])
            # only the digits' rows of the head: their softmax is renormalised over them
            bias = head.bias[wanted] if getattr(head, "bias", None) is not None else None
            probs = torch.softmax(
                torch.nn.functional.linear(before, head.weight[wanted], bias).float(), dim=-1
            )
            if self.one_zero is not None:
                ones = torch.cat([hidden[b, i] for b, i in enumerate(rows.ones)])
                p_zero = torch.softmax(head(ones).float(), dim=-1)[:, self.one_zero[1]]
                ten = probs[:, 1] * p_zero
                probs[:, 1] = probs[:, 1] * (1 - p_zero)
                probs = torch.cat([probs, ten[:, None]], dim=-1)
            return list(torch.split(probs.cpu(), [len(r) for r in rows.before]))

    def _shared_cache(self, batch: list[tuple[list[int], list[int]]]) -> tuple[int, Any]:
        """How many first ids the prompts share, and the model's cache over them repeated for
        each prompt: the kept cache of the simulator's few-shot beginning, extended by the rest
        of what they share (the explanation), run once. None where nothing is cached."""
        prefix, cache = self._prefix() if self.prefix_cache else ([], None)
        if not all(ids[: len(prefix)] == prefix for ids, _ in batch):
            prefix, cache = [], None  # a template that does not split there: whole prompts
        shared = shared_length(batch, len(prefix))
        if shared == 0:
            return 0, None
        cache = copy.deepcopy(cache) if cache is not None else None
        if shared > len(prefix):
            body = self.model.get_decoder()
            ids = torch.tensor([batch[0][0][len(prefix) : shared]], device=self.model.device)
            extra = _cache_argument(body.forward, cache) if cache is not None else {}
            cache = _cache_of(body(input_ids=ids, use_cache=True, **extra))
        cache.batch_repeat_interleave(len(batch))
        return shared, cache

    # -- explanations --------------------------------------------------------------------------

    @property
    def newline_ids(self) -> torch.Tensor:
        """The ids of every token whose text holds a line break (an explanation's end)."""
        if getattr(self, "_newline_ids", None) is None:
            decoded = self.tokenizer.convert_ids_to_tokens(list(range(len(self.tokenizer))))
            texts = [self.tokenizer.convert_tokens_to_string([t]) if t else "" for t in decoded]
            self._newline_ids = torch.tensor([i for i, t in enumerate(texts) if "\n" in t])
        return self._newline_ids

    @torch.inference_mode()
    def generate(
        self,
        messages: list[dict[str, str]],
        n: int,
        max_new_tokens: int = 40,
        temperature: float = 1.0,
        top_p: float = 1.0,
        seed: int = 0,
    ) -> list[str]:
        """n sampled answers to the messages, each up to its first line's end."""
        text = self.render(messages, continue_final=False)
        ids = torch.tensor([self._encode(text)], device=self.model.device)
        eos = [i for i in (self.tokenizer.eos_token_id,) if i is not None]
        with self._lock, torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            # the prompt is run once and its cache copied to the n samples (generate would run
            # it n times): the prompt is most of the work; its few-shot beginning (every
            # message but the last) is the same for every neuron, its cache kept
            extra = {}
            if self.prefix_cache and ids.shape[1] > 1:
                cache = self._prompt_cache(messages, ids, n, max_new_tokens)
                extra = _cache_argument(self.model.forward, cache)
            batch = ids.repeat(n, 1)
            out = self.model.generate(
                batch,
                attention_mask=torch.ones_like(batch),
                do_sample=temperature > 0,
                temperature=temperature if temperature > 0 else None,
                top_p=top_p,
                max_new_tokens=max_new_tokens,
                pad_token_id=self.tokenizer.pad_token_id or (eos[0] if eos else 0),
                eos_token_id=eos or None,
                stopping_criteria=StoppingCriteriaList([_EndsLine(self.newline_ids)]),
                **extra,
            )
        return self.tokenizer.batch_decode(out[:, ids.shape[1] :], skip_special_tokens=True)

    def _prompt_cache(
        self, messages: list[dict[str, str]], ids: torch.Tensor, n: int, max_new_tokens: int
    ):
        """The cache of the prompt but its last token, for n samples: the kept cache of its
        first messages extended by the rest (or the whole, where the template does not split
        there), copied into a static cache of room for the answers (a growing cache copies
        itself at every new token: a fifth of the sampling's time)."""
        prompt = ids[0].tolist()
        prefix, cache = self._cached(messages[:-1]) if len(messages) > 1 else ([], None)
        if cache is None or prompt[: len(prefix)] != prefix or len(prefix) >= len(prompt) - 1:
            prefix, cache = [], None
        extra = (
            _cache_argument(self.model.get_decoder().forward, copy.deepcopy(cache))
            if cache is not None
            else {}
        )
        out = self.model.get_decoder()(input_ids=ids[:, len(prefix) : -1], use_cache=True, **extra)
        return _static(self.model.config, _cache_of(out), n, ids.shape[1] + max_new_tokens)


class _EndsLine(StoppingCriteria):
    """A sample ends at its first line break (explanations are one line)."""

    def __init__(self, newline_ids: torch.Tensor) -> None:
        self.newline_ids = newline_ids

    def __call__(self, input_ids: torch.Tensor, scores, **kwargs) -> torch.Tensor:
        return torch.isin(input_ids[:, -1], self.newline_ids.to(input_ids.device))


def _static(config, cache, n: int, length: int):
    """A static cache of `length` positions holding the cache's n times over (the cache
    itself, repeated, where its layers are not plain keys and values)."""
    layers = getattr(cache, "layers", None)
    if not layers or any(getattr(layer, "keys", None) is None for layer in layers):
        cache.batch_repeat_interleave(n)
        return cache
    static = StaticCache(config=config, max_cache_len=length)
    for mine, layer in zip(static.layers, layers, strict=True):
        mine.update(layer.keys.repeat(n, 1, 1, 1), layer.values.repeat(n, 1, 1, 1))
    return static


def _in_dtype(model, dtype: str | None):
    """The model itself, or a copy of it in another dtype (its own weights stay as they are:
    the server reads activations from them). "auto": bfloat16 where the model's device
    multiplies it natively (a CPU with AMX or AVX512-BF16: the simulator's passes 2-3x faster
    than in float32; a GPU that supports it), else the model as it is."""
    if dtype == "auto":
        dtype = "bfloat16" if native_bfloat16(next(model.parameters()).device) else None
    wanted = getattr(torch, dtype, None) if dtype else None
    if dtype and not isinstance(wanted, torch.dtype):
        raise UnsuitableModelError(
            f"unknown dtype {dtype!r}: give auto, bfloat16, float16 or float32"
        )
    if wanted is None or wanted == next(model.parameters()).dtype:
        return model
    return copy.deepcopy(model).to(wanted)


CPU_BFLOAT16 = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
"""torch.cpu's checks for the instructions that multiply bfloat16 natively: AMX tiles (Intel
Xeons since Sapphire Rapids) and AVX512-BF16's dot products (AMD Zen 4 and later, among
others): with either, SmolLM2's passes in bfloat16 take a third to a half of float32's time."""


def native_bfloat16(device: torch.device) -> bool:
    """Whether the device multiplies bfloat16 natively (CPUs: CPU_BFLOAT16; others emulate
    it, slower than float32)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        checks = (getattr(torch.cpu, name, None) for name in CPU_BFLOAT16)
        return any(bool(check and check()) for check in checks)
    return False


def _cache_of(output):
    """The key/value cache a pass returned (`cache` in newer transformers, else
    `past_key_values`)."""
    cache = getattr(output, "cache", None)
    return cache if cache is not None else output.past_key_values


def _cache_argument(body_forward, cache) -> dict:
    parameters = inspect.signature(body_forward).parameters
    return {"cache": cache} if "cache" in parameters else {"past_key_values": cache}
