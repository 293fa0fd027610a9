"""Domain-adaptive masked-LM pretraining of an encoder on a user's own medical text.

The text is tokenised, concatenated and cut into blocks of ``max_length`` tokens (the usual
``group_texts`` recipe), 15 % of tokens are masked by ``DataCollatorForLanguageModeling`` and the
encoder is trained with the Hugging Face ``Trainer``. The output is a plain Hugging Face model
directory (safetensors + tokenizer) to use as ``base_model:`` in a run config. Use only training text:
pretraining on a test split leaks it into the evaluation.
"""

from __future__ import annotations

import logging
import tempfile
import time
from pathlib import Path
from typing import Any, Iterable

import torch
from transformers import (
    AutoModelForMaskedLM,
    AutoTokenizer,
    DataCollatorForLanguageModeling,
    Trainer,
    TrainingArguments,
    set_seed,
)

from medtune.document import Document
from medtune.errors import ConfigError
from medtune.fileutils import atomic_dir
from medtune.models.encoder import quiet_loading, resolve_base_model
from medtune.runtime import cpu_name, resolve_bf16

logger = logging.getLogger(__name__)


def blocks(tokenizer: Any, texts: Iterable[str], max_length: int) -> list[dict[str, list[int]]]:
    """Token blocks of exactly ``max_length`` (special tokens included) from concatenated texts."""
    prefix, suffix = [tokenizer.cls_token_id], [tokenizer.sep_token_id]
    body = max_length - len(prefix) - len(suffix)
    stream: list[int] = []
    out = []
    for text in texts:
        if not text.strip():
            continue
        stream.extend(tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"])
        stream.extend(suffix)
        while len(stream) >= body:
            out.append({"input_ids": prefix + stream[:body] + suffix})
            stream = stream[body:]
    if len(stream) > body // 4:  # keep a long enough tail
        out.append({"input_ids": prefix + stream + suffix})
    return out


def masked_lm_loss(model: Any, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Masked-LM loss with the vocabulary projection computed only at the masked positions.

    ``*ForMaskedLM.forward`` projects every token onto the whole vocabulary although only ~15 % are
    scored; with a 30k vocabulary and a small encoder that projection dominates the step. The head is
    the model's child other than its encoder (``cls`` for BERT, ``lm_head`` for RoBERTa).
    """
    labels = batch["labels"]
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    states = model.base_model(**inputs).last_hidden_state
    selected = labels != -100
    head = next(m for _, m in model.named_children() if m is not model.base_model)
    logits = head(states[selected])
    return torch.nn.functional.cross_entropy(logits.float(), labels[selected])


def document_texts(docs: Iterable[Document]) -> Iterable[str]:
    for doc in docs:
        if doc.text_pair:
            yield doc.text_pair
        yield doc.text


def _masked_only_trainer():

    class MaskedOnlyTrainer(Trainer):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            loss = masked_lm_loss(model, inputs)
            return (loss, {"loss": loss}) if return_outputs else loss

    return MaskedOnlyTrainer


def pretrain_mlm(
    base_model: str,
    texts: Iterable[str],
    output_dir: str | Path,
    *,
    epochs: float = 3.0,
    learning_rate: float = 5e-5,
    batch_size: int = 16,
    max_length: int = 128,
    mlm_probability: float = 0.15,
    seed: int = 42,
    bf16: str = "auto",
    max_steps: int = -1,
    progress_bar: bool = True,
) -> dict[str, Any]:
    """Continue masked-LM pretraining of ``base_model`` on ``texts``; write a HF model directory."""


    base = resolve_base_model(base_model)
    tokenizer = AutoTokenizer.from_pretrained(base, trust_remote_code=False)
    if tokenizer.mask_token_id is None:
        raise ConfigError(f"base_model {base_model} has no mask token", fix="use a masked-LM encoder (BERT family)")
    data = blocks(tokenizer, texts, max_length)
    if not data:
        raise ConfigError("no text to pretrain on", fix="give documents with non-empty text")
    set_seed(seed)
    with quiet_loading():
        model = AutoModelForMaskedLM.from_pretrained(base, trust_remote_code=False)
    use_cpu = not torch.cuda.is_available()
    use_bf16 = resolve_bf16(bf16, torch.device("cpu" if use_cpu else "cuda"))
    with tempfile.TemporaryDirectory() as tmp:
        args = TrainingArguments(
            output_dir=tmp, num_train_epochs=epochs, max_steps=max_steps, learning_rate=learning_rate,
            per_device_train_batch_size=batch_size, warmup_steps=0.06, weight_decay=0.01, seed=seed,
            bf16=use_bf16, use_cpu=use_cpu, save_strategy="no", eval_strategy="no", report_to="none",
            disable_tqdm=not progress_bar, logging_steps=50, dataloader_num_workers=0)
        collator = DataCollatorForLanguageModeling(tokenizer, mlm_probability=mlm_probability)
        trainer = _masked_only_trainer()(model=model, args=args, train_dataset=data, data_collator=collator)
        start = time.perf_counter()
        output = trainer.train()
    out = Path(output_dir)
    with atomic_dir(out) as staging:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
    summary = {"base_model": base_model, "blocks": len(data), "block_tokens": max_length,
               "train_loss": output.training_loss, "runtime_s": round(time.perf_counter() - start, 1),
               "bf16": use_bf16, "cpu": cpu_name(), "output_dir": str(out)}
    logger.info("masked-LM pretraining done: %s", summary)
    return summary
