"""A masked-LM pretraining run: base model + corpus -> an ordinary Hugging Face model directory.

``pretrain(config, output)`` builds the corpus (:mod:`medtune.pretraining.corpus`), packs it
(:mod:`medtune.pretraining.packing`), trains with the Hugging Face ``Trainer`` and the masking collator
(:mod:`medtune.pretraining.masking`), and writes ``output`` atomically: ``config.json``,
``model.safetensors``, the tokenizer, ``pretraining.json`` (the card) and ``excluded_test_ids.txt``.
The directory is a ``base_model:`` for every task config.

* **Fresh head.** A base model saved without a masked-LM head (sentence-transformers' MiniLM is a plain
  ``BertModel``) gets a new one: the missing keys on load are all head keys (``fresh_head: true`` in
  the card); the decoder is tied to the input embeddings. For the first ``head_warmup_steps`` (default
  100 with a fresh head, else 0) only the head trains: the encoder runs without gradients and the
  embeddings' gradient (they are the tied decoder) is dropped, so that a random head's first large
  gradients do not wreck the pretrained encoder.
* **Checkpoints** go to ``<output>.checkpoints/`` beside the output (the last one kept); ``resume=True``
  continues from the last one (a fresh start when there is none). A stop by ``time_budget_minutes`` or
  ``max_tokens`` saves a checkpoint and still writes the output (``complete: false`` in the card).
* **Same run.** A fingerprint of the settings (:func:`settings_fingerprint`: base model, corpus, masking,
  packing and training sections, less the settings of one invocation in ``PER_INVOCATION``) and of the
  corpus (:func:`corpus_fingerprint`: its texts, tokens and blocks) is kept in every checkpoint and in the
  card; ``--resume`` from a checkpoint, or "already complete", of another fingerprint is refused (E310).
* **Block order.** The training sampler shuffles with its own generator, seeded by ``seed`` and the
  epoch (:class:`SeededLengthGroupedSampler`), so that a resumed run skips exactly the batches the first
  part trained on: nothing else (the step-0 held-out loss, the masking) moves the order.
* **Held-out loss.** The blocks of a share of the documents chosen by a seeded hash of their text (at most
  ``held_out_max_blocks`` blocks, about ``held_out_fraction``) are never trained on; they are masked once
  with a fixed seed and their MLM loss is computed before training and every ``eval_every`` steps.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import platform
import resource
import shutil
import time
from pathlib import Path
from typing import Any, Iterator, Sequence

import torch
from transformers import (AutoModelForMaskedLM, AutoTokenizer, Trainer, TrainerCallback, TrainingArguments,
                          set_seed)
from transformers.trainer_pt_utils import get_length_grouped_indices

from medtune.errors import ModelError
from medtune.fileutils import atomic_dir, atomic_write
from medtune.models.encoder import quiet_loading, resolve_base_model
from medtune.pretraining.config import PretrainConfig, PretrainError
from medtune.pretraining.corpus import CLINICAL_NOTES_NOTICE, Corpus, build_corpus, text_hash
from medtune.pretraining.masking import MaskingCollator
from medtune.pretraining.packing import BlockView, check_tokenizer, held_out_split, pack
from medtune.runtime import cpu_name, resolve_bf16

logger = logging.getLogger(__name__)

CARD_NAME = "pretraining.json"
EXCLUDED_NAME = "excluded_test_ids.txt"
PROGRESS_NAME = "medtune-pretraining-progress.json"
FRESH_HEAD_WARMUP = 100
#: Training settings that may differ between the parts of one run (they do not change what is trained).
PER_INVOCATION = ("time_budget_minutes", "max_tokens", "progress_bar", "logging_every", "save_every", "eval_every")


def masked_lm_loss(model: Any, batch: dict[str, torch.Tensor], *, frozen_encoder: bool = False) -> torch.Tensor:
    """Masked-LM loss with the vocabulary projection computed only at the masked positions.

    ``*ForMaskedLM.forward`` projects every token onto the whole vocabulary although only ~15 % are
    scored; with a 30k vocabulary and a small encoder that projection dominates the step. The head is
    the model's child other than its encoder (``cls`` for BERT, ``lm_head`` for RoBERTa).
    ``frozen_encoder`` runs the encoder without gradients (the head warm-up).
    """
    labels = batch["labels"]
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    if frozen_encoder:
        with torch.no_grad():
            states = model.base_model(**inputs).last_hidden_state
    else:
        states = model.base_model(**inputs).last_hidden_state
    selected = labels != -100
    head = next(m for _, m in model.named_children() if m is not model.base_model)
    logits = head(states[selected])
    return torch.nn.functional.cross_entropy(logits.float(), labels[selected])


class SeededLengthGroupedSampler(torch.utils.data.Sampler):
    """Block indices in a random order drawn from a generator of its own, seeded with ``seed + epoch``
    (the Trainer calls ``set_epoch``), grouped by length into mega-batches when ``lengths`` are given
    (the Trainer's ``get_length_grouped_indices``). The order does not depend on torch's global random
    state, which other steps (evaluation, masking) advance by different amounts in a fresh and a resumed
    run."""

    def __init__(self, n: int, batch_size: int, seed: int, lengths: Sequence[int] | None = None) -> None:
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.lengths = list(lengths) if lengths is not None else None
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.n

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        if self.lengths is None:
            return iter(torch.randperm(self.n, generator=generator).tolist())
        return iter(get_length_grouped_indices(self.lengths, self.batch_size, generator=generator))


class MaskedLMTrainer(Trainer):
    """The HF ``Trainer`` with the masked-positions-only loss, the head warm-up and a seeded sampler.

    ``compute_loss`` returns the mean over the batch's masked tokens, so the Trainer must divide it by
    the gradient-accumulation steps: ``model_accepts_loss_kwargs`` is False (``BertForMaskedLM.forward``
    takes ``**kwargs``, which would make the Trainer pass ``num_items_in_batch`` and skip that division).
    """

    head_warmup_steps = 0
    block_lengths: list[int] | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.model_accepts_loss_kwargs = False

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        frozen = model.training and self.state.global_step < self.head_warmup_steps
        loss = masked_lm_loss(model, inputs, frozen_encoder=frozen)
        return (loss, {"loss": loss}) if return_outputs else loss

    def training_step(self, model, inputs, num_items_in_batch=None):
        loss = super().training_step(model, inputs, num_items_in_batch)
        if self.state.global_step < self.head_warmup_steps:  # the embeddings are the tied decoder
            for p in model.base_model.parameters():
                p.grad = None
        return loss

    def _get_train_sampler(self, train_dataset=None):
        dataset = train_dataset if train_dataset is not None else self.train_dataset
        per_step = self.args.train_batch_size * self.args.gradient_accumulation_steps
        return SeededLengthGroupedSampler(len(dataset), per_step, self.args.seed, self.block_lengths)


class BudgetCallback(TrainerCallback):
    """Stops (and checkpoints) at the time budget of this invocation or at ``max_tokens`` in all."""

    def __init__(self, seconds: float | None, max_tokens: int | None) -> None:
        self.seconds, self.max_tokens = seconds, max_tokens
        self.start = time.perf_counter()
        self.stopped_by: str | None = None

    def on_train_begin(self, args, state, control, **kwargs):
        self.start = time.perf_counter()  # loading, packing and the first held-out loss do not count
        return control

    def on_step_end(self, args, state, control, **kwargs):
        if self.seconds is not None and time.perf_counter() - self.start >= self.seconds:
            self.stopped_by = "time_budget"
        elif self.max_tokens is not None and state.num_input_tokens_seen >= self.max_tokens:
            self.stopped_by = "max_tokens"
        if self.stopped_by:
            control.should_training_stop = True
            control.should_save = True
        return control


def checkpoint_dir(output: str | Path) -> Path:
    output = Path(output)
    return output.with_name(output.name + ".checkpoints")


def _last_checkpoint(folder: Path) -> Path | None:
    """The checkpoint of the highest step that the Trainer finished writing (its ``trainer_state.json``)."""
    found = [p for p in folder.glob("checkpoint-*")
             if p.is_dir() and p.name.split("-")[-1].isdigit() and (p / "trainer_state.json").is_file()]
    return max(found, key=lambda p: int(p.name.split("-")[-1])) if found else None


def load_masked_lm(base: str, where: str) -> tuple[Any, bool]:
    """The base model with a masked-LM head, and whether that head is fresh (absent from the weights)."""
    with quiet_loading():
        try:
            model, info = AutoModelForMaskedLM.from_pretrained(base, trust_remote_code=False, use_safetensors=True,
                                                               output_loading_info=True)
        except Exception as err:
            raise ModelError(f"{where}: cannot be loaded as a masked-LM encoder ({type(err).__name__})",
                             fix="use a BERT-family model directory (config.json, model.safetensors, "
                                 "tokenizer)") from None
    heads = tuple(n + "." for n, m in model.named_children() if m is not model.base_model)
    missing = [k for k in info.get("missing_keys", ()) if not k.startswith("pooler.")]
    encoder_missing = [k for k in missing if not k.startswith(heads)]
    if encoder_missing or info.get("mismatched_keys"):
        raise ModelError(f"{where}: its encoder weights do not fit its config.json ({len(encoder_missing)} missing)",
                         fix="copy model.safetensors and config.json of the same model together")
    if model.get_output_embeddings().weight is not model.get_input_embeddings().weight:
        model.tie_weights()
    return model, bool(missing)


def _peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # KiB on Linux


def settings_fingerprint(config: PretrainConfig) -> dict[str, Any]:
    """``{"settings": hash, "sections": {section: hash}}`` of what decides the trained model: the base
    model, the corpus, masking, packing and training sections (less ``PER_INVOCATION``)."""
    training = {k: v for k, v in config.training.model_dump().items() if k not in PER_INVOCATION}
    sections = {"base_model": config.base_model, "corpus": config.corpus.model_dump(),
                "masking": config.masking.model_dump(), "packing": config.packing.model_dump(), "training": training}
    hashes = {k: _hash(json.dumps(v, sort_keys=True)) for k, v in sections.items()}
    return {"settings": _hash(json.dumps(hashes, sort_keys=True)), "sections": hashes}


def corpus_fingerprint(texts: Sequence[str], blocks: Any) -> dict[str, Any]:
    """The hash of the corpus's texts (in order) and its counts: another corpus under the same config
    (a corpus file or data directory that changed) differs."""
    digest = hashlib.blake2b(digest_size=12)
    for text in texts:
        raw = text.encode("utf-8")
        digest.update(len(raw).to_bytes(8, "little"))
        digest.update(raw)
    return {"corpus": digest.hexdigest(), "documents": len(texts), "tokens": int(blocks.text_tokens),
            "blocks": len(blocks)}


def _hash(text: str) -> str:
    return hashlib.blake2b(text.encode("utf-8"), digest_size=12).hexdigest()


def _check_same(recorded: dict[str, Any] | None, now: dict[str, Any], key: str, where: Path, fix: str) -> None:
    """Refuse (E310) when ``recorded[key]`` (a checkpoint's or a card's fingerprint) differs from ``now``."""
    if recorded is None or key not in recorded or recorded[key] == now[key]:
        return
    if key == "settings":
        old = recorded.get("sections", {})
        what = ", ".join(k for k, v in now["sections"].items() if old.get(k) != v) or "settings"
    else:
        what = "corpus ({} documents / {} blocks then, {} / {} now)".format(
            recorded.get("documents"), recorded.get("blocks"), now["documents"], now["blocks"])
    raise PretrainError(f"{where}: written by a run of another {what} (fingerprint field '{key}' "
                        f"{str(recorded[key])[:12]}, now {str(now[key])[:12]})", fix=fix)


def pretrain(config: PretrainConfig, output: str | Path, *, resume: bool = False,
             corpus: Corpus | None = None, data_dir: str | Path | None = None) -> dict[str, Any]:
    """Run masked-LM pretraining; write ``output`` (see the module docstring); return the card."""
    output = Path(output)
    tc = config.training
    ckpt_root = checkpoint_dir(output)
    settings = settings_fingerprint(config)
    done = _read_card(output) if resume else None
    done = done if done is not None and done.get("complete") else None
    other = f"give another --output, or delete {output} and {ckpt_root} to start again"
    if done is not None:
        if done.get("fingerprint") is None and not _legacy_same(done, config):
            raise PretrainError(f"{output / CARD_NAME}: a complete run of other settings", fix=other)
        _check_same(done.get("fingerprint"), settings, "settings", output / CARD_NAME, other)
    last = _last_checkpoint(ckpt_root) if ckpt_root.is_dir() and done is None else None
    if last is not None and not resume:
        raise PretrainError(f"{ckpt_root} holds checkpoints of an earlier run",
                            fix="pass --resume to continue it, or delete that folder to start again")
    progress = _read_progress(last) if last is not None else {"seconds": 0.0, "initial_held_out_loss": None}
    refit = f"resume with the first run's config and corpus, or delete {ckpt_root} to start again"
    legacy = last is not None and "fingerprint" not in progress
    if legacy:
        logger.warning("%s has no fingerprint (an earlier medtune): its settings and corpus are not checked", last)
    else:
        _check_same(progress.get("fingerprint"), settings, "settings", last or ckpt_root, refit)
    base = resolve_base_model(config.base_model)
    tokenizer = AutoTokenizer.from_pretrained(base, trust_remote_code=False)
    check_tokenizer(tokenizer, f"base_model {config.base_model}")
    built = time.perf_counter()
    corpus = corpus or build_corpus(config.corpus, data_dir)
    blocks = pack(tokenizer, corpus.texts, config.packing.max_length,
                  cross_document=config.packing.cross_document)
    if len(blocks) == 0:
        raise PretrainError("the corpus gives no token blocks", fix="name corpora with text in corpus.corpora")
    build_seconds = time.perf_counter() - built
    fingerprint = {**settings, **corpus_fingerprint(corpus.texts, blocks)}
    if done is not None:
        if done.get("fingerprint") is None:
            logger.warning("%s has no fingerprint (an earlier medtune): its corpus is not checked", output)
        _check_same(done.get("fingerprint"), fingerprint, "corpus", output / CARD_NAME, other)
        logger.info("%s is complete (%d steps): nothing to do", output, done["steps"])
        return {**done, "output_dir": str(output), "already_complete": True}
    if last is not None:
        _check_same(progress.get("fingerprint"), fingerprint, "corpus", last, refit)
    # held-out documents by their text's hash (stable); a checkpoint of an earlier medtune keeps its split
    keys = None if legacy else [text_hash(t) for t in corpus.texts]
    train_idx, held_idx = held_out_split(blocks, tc.held_out_fraction, tc.held_out_max_blocks, tc.seed, keys)
    train_set = blocks.subset(train_idx)
    set_seed(tc.seed)
    model, fresh_head = load_masked_lm(base, f"base_model {config.base_model}")
    warmup_head = tc.head_warmup_steps if tc.head_warmup_steps is not None else (
        FRESH_HEAD_WARMUP if fresh_head else 0)
    collator = MaskingCollator(tokenizer, config.masking)
    held_set = collator.premask(blocks.subset(held_idx), seed=tc.seed + 1) if held_idx else None
    per_step = tc.batch_size * tc.gradient_accumulation_steps
    max_steps = tc.max_steps or max(1, math.ceil(tc.epochs * len(train_set) / per_step))
    use_cpu = not torch.cuda.is_available()
    use_bf16 = resolve_bf16(tc.bf16, torch.device("cpu" if use_cpu else "cuda"))
    args = TrainingArguments(
        output_dir=str(ckpt_root), max_steps=max_steps, learning_rate=tc.learning_rate,
        per_device_train_batch_size=tc.batch_size, per_device_eval_batch_size=max(tc.batch_size, 32),
        gradient_accumulation_steps=tc.gradient_accumulation_steps, warmup_steps=tc.warmup_ratio,
        weight_decay=tc.weight_decay, seed=tc.seed, bf16=use_bf16, use_cpu=use_cpu,
        save_strategy="steps", save_steps=tc.save_every, save_total_limit=1,
        eval_strategy="steps" if held_set else "no", eval_steps=tc.eval_every, prediction_loss_only=True,
        logging_steps=tc.logging_every, report_to="none", disable_tqdm=not tc.progress_bar,
        dataloader_num_workers=0, include_num_input_tokens_seen="non_padding", remove_unused_columns=False)
    budget = BudgetCallback(tc.time_budget_minutes * 60 if tc.time_budget_minutes else None, tc.max_tokens)
    trainer = MaskedLMTrainer(model=model, args=args, train_dataset=train_set, eval_dataset=held_set,
                              data_collator=collator, callbacks=[budget])
    trainer.head_warmup_steps = warmup_head
    trainer.block_lengths = train_set.lengths() if tc.group_by_length else None
    if last is None and held_set:
        progress["initial_held_out_loss"] = round(float(trainer.evaluate()["eval_loss"]), 4)
        logger.info("held-out MLM loss before training: %s", progress["initial_held_out_loss"])
    progress["fingerprint"] = fingerprint
    progress["corpus_build_seconds"] = round(progress.get("corpus_build_seconds", 0.0) + build_seconds, 1)
    trainer.add_callback(_ProgressCallback(progress, ckpt_root))
    start = time.perf_counter()
    trainer.train(resume_from_checkpoint=str(last) if last is not None else None)
    seconds = progress["seconds"] + (time.perf_counter() - start)
    state = trainer.state
    held = [{"step": e["step"], "loss": round(float(e["eval_loss"]), 4)} for e in state.log_history if "eval_loss" in e]
    if progress["initial_held_out_loss"] is not None:
        held.insert(0, {"step": 0, "loss": progress["initial_held_out_loss"]})
    clinical = list(corpus.card.get("clinical_notes") or [])
    card = {
        "base_model": config.base_model, "fresh_head": fresh_head, "head_warmup_steps": warmup_head,
        "corpus": {**corpus.card, "tokens": blocks.text_tokens, "blocks": len(blocks),
                   "train_blocks": len(train_set), "held_out_blocks": len(held_idx)},
        "clinical_notes": clinical,
        "sharing": CLINICAL_NOTES_NOTICE.format(names=", ".join(clinical)) if clinical else None,
        "masking": config.masking.model_dump(), "packing": config.packing.model_dump(),
        "training": tc.model_dump(), "max_steps": max_steps, "steps": state.global_step,
        "complete": state.global_step >= max_steps, "stopped_by": budget.stopped_by,
        "tokens_seen": int(state.num_input_tokens_seen), "hours": round(seconds / 3600, 4),
        "hours_cover": "training steps and held-out losses of every part; not corpus building and packing "
                       "(corpus_build_seconds), model loading or the step-0 held-out loss",
        "corpus_build_seconds": progress["corpus_build_seconds"],
        "peak_rss_mb": max(_peak_rss_mb(), float(progress.get("peak_rss_mb") or 0.0)),
        "held_out_losses": held,
        "train_loss": next((round(float(e["loss"]), 4) for e in reversed(state.log_history) if "loss" in e), None),
        "bf16": use_bf16, "cpu": cpu_name(), "device": "cpu" if use_cpu else torch.cuda.get_device_name(0),
        "torch": torch.__version__, "python": platform.python_version(), "resumed": last is not None,
        "date": time.strftime("%Y-%m-%d"), "fingerprint": fingerprint,
    }
    with atomic_dir(output) as staging:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        (staging / CARD_NAME).write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
        (staging / EXCLUDED_NAME).write_text("".join(i + "\n" for i in corpus.excluded_ids), encoding="utf-8")
    logger.info("masked-LM pretraining: %d steps, %d tokens seen, written to %s", state.global_step,
                card["tokens_seen"], output)
    if clinical:
        logger.warning("%s: %s", output, card["sharing"])
    return {**card, "output_dir": str(output)}


def _read_card(output: Path) -> dict[str, Any] | None:
    try:
        card = json.loads((output / CARD_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return card if isinstance(card, dict) else None


def _legacy_same(card: dict[str, Any], config: PretrainConfig) -> bool:
    """A card without a fingerprint (an earlier medtune): the settings it records, less ``PER_INVOCATION``."""
    def training(d: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in d.items() if k not in PER_INVOCATION}

    return (training(card.get("training") or {}) == training(config.training.model_dump())
            and card.get("base_model") == config.base_model and card.get("masking") == config.masking.model_dump()
            and card.get("packing") == config.packing.model_dump())


def _read_progress(checkpoint: Path) -> dict[str, Any]:
    try:
        return json.loads((checkpoint / PROGRESS_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {"seconds": 0.0, "initial_held_out_loss": None}


class _ProgressCallback(TrainerCallback):
    """Writes the cumulative training time (and the step-0 held-out loss) into every checkpoint."""

    def __init__(self, progress: dict[str, Any], root: Path) -> None:
        self.progress, self.root = progress, root
        self.start = time.perf_counter()

    def on_save(self, args, state, control, **kwargs):
        folder = self.root / f"checkpoint-{state.global_step}"
        if folder.is_dir():
            data = {**self.progress, "seconds": self.progress["seconds"] + time.perf_counter() - self.start,
                    "peak_rss_mb": max(_peak_rss_mb(), float(self.progress.get("peak_rss_mb") or 0.0))}
            with atomic_write(folder / PROGRESS_NAME) as handle:
                json.dump(data, handle)
        return control


def remove_checkpoints(output: str | Path) -> None:
    shutil.rmtree(checkpoint_dir(output), ignore_errors=True)


__all__ = ["BlockView", "MaskedLMTrainer", "SeededLengthGroupedSampler", "checkpoint_dir", "corpus_fingerprint",
           "load_masked_lm", "masked_lm_loss", "pretrain", "settings_fingerprint"]
