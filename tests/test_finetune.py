"""LoRA fine-tunes end to end on tiny random bases of three families: text prompts, event tokens, 4-bit NF4 on the CPU,
the leaderboard row, and each bad input's one line."""
import json, shutil

import numpy as np
import pytest
import torch

from mqbench import evaluate as ev
from mqbench import finetune as ft
from mqbench.core import MqbenchError

FAST = dict(steps=4, batch_size=4, eval_every=2, eval_windows=16, checkpoint_every=4, lora_r=4, lora_alpha=8, lr=1e-2)


@pytest.fixture(scope="module")
def ex():
    from mqbench.demo import example_inputs
    torch.set_num_threads(1)
    return example_inputs()


@pytest.fixture(scope="module")
def bases(tmp_path_factory):
    "Tiny random causal LMs saved with a tokenizer: llama (hidden 64: NF4's block on the CPU), qwen2, llama4."
    d = tmp_path_factory.mktemp("bases")
    return {"llama": ft.tiny_base("llama", d / "llama", hidden=64),
            "qwen2": ft.tiny_base("qwen2", d / "qwen2", vocab_size=640),          # room for the example day's 595 event tokens
            "llama4": ft.tiny_base("llama4", d / "llama4", tokenizer=False)}


def test_text_input_merges_to_what_the_adapter_predicts(ex, bases, tmp_path):
    "Text prompts on a tiny Llama: the answer's likelihood trained, the merged causal LM loads and scores as the adapter did."
    from transformers import AutoModelForCausalLM
    run = ft.finetune_command(str(bases["llama"]), str(ex["dataset"]), "text", str(tmp_path / "run"), steps=4, lora_r=4, lora_alpha=8,
                              **{k: v for k, v in FAST.items() if k not in ("steps", "lora_r", "lora_alpha")})
    assert (run / "adapter" / "adapter_config.json").exists() and (run / "merged" / "tokenizer.json").exists()
    assert json.loads((run / "adapter" / "adapter_config.json").read_text())["r"] == 4
    assert AutoModelForCausalLM.from_pretrained(run / "merged").config.architectures == ["LlamaForCausalLM"]
    pa, pm = (ft.predict_finetuned(run, "test", w, stride=40) for w in ("adapter", "merged"))
    assert pa.shape == pm.shape and np.allclose(pa, pm, atol=1e-4)
    model, info = ft.load_finetuned(run, "merged")
    s = ft.FinetuneSplit(ex["dataset"], "test", "text", tokenizer=info["tokenizer"])
    x, y = s.get([0, 1])
    with torch.no_grad():        # the answer-only loss is the log-likelihood the prediction compares, at the true label
        nll, scores = model.answer_nll(x, y), model(x)
    assert torch.allclose(nll, -scores[torch.arange(2), y], atol=1e-4)


def test_events_on_another_family_and_the_leaderboard_row(ex, bases, tmp_path):
    "Event tokens into a tiny Qwen2 through the same code, then the run as a leaderboard row beside the baselines."
    run = ft.finetune(ft.FinetuneConfig(base=str(bases["qwen2"]), data=str(ex["dataset"]), input="events", tokens=str(ex["tokens"]),
                                        n_events=24, out=str(tmp_path / "ev"), **FAST))
    e = ev.run_entry(run, stride=8, latency_calls=5)
    assert e.family == "finetune" and e.name == "lora-events" and 0 < e.params < e.total_params and e.latency["p50_ms"] > 0
    lb = ev.leaderboard(ex["dataset"], [e], stride=8, n_boot=100)
    row = lb.table.loc["lora-events"]
    assert row["macro_f1_lo"] <= row["macro_f1"] <= row["macro_f1_hi"] and row["total_params"] == e.total_params
    assert np.isnan(lb.table.loc["persistence", "total_params"])


def test_4bit_on_the_cpu(ex, bases, tmp_path):
    "NF4 training on this CPU (bitsandbytes' CPU backend); the merge reloads the base in full precision."
    import bitsandbytes as bnb
    t = ft.FinetuneTrainer(ft.FinetuneConfig(base=str(bases["llama"]), data=str(ex["dataset"]), out=str(tmp_path / "q"), load_in_4bit=True,
                                             **FAST))
    assert isinstance(t.raw.net.base_model.model.model.layers[0].self_attn.q_proj.base_layer, bnb.nn.Linear4bit)
    run = ft.finetune(ft.FinetuneConfig(base=str(bases["llama"]), data=str(ex["dataset"]), out=str(tmp_path / "q"), load_in_4bit=True,
                                        overwrite=True, **FAST))
    merged, _ = ft.load_finetuned(run, "merged")
    assert merged.net.model.layers[0].self_attn.q_proj.weight.dtype == torch.float32
    pa, pm = (ft.predict_finetuned(run, "test", w, stride=40) for w in ("adapter", "merged"))
    assert np.allclose(pa, pm, atol=1e-4)


def test_bad_input_one_line_each(ex, bases, tmp_path):
    from transformers import BertConfig, BertModel
    BertModel(BertConfig(vocab_size=64, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32)).save_pretrained(
        tmp_path / "bert")
    cases = {"not a causal LM": dict(base=str(tmp_path / "bert")), "no config.json": dict(base=str(tmp_path))}
    from transformers import AutoTokenizer, PreTrainedTokenizerFast
    shutil.copytree(bases["llama"], tmp_path / "nopad")
    backend = AutoTokenizer.from_pretrained(bases["llama"]).backend_tokenizer
    tok = PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<s>", eos_token="</s>")
    tok.save_pretrained(tmp_path / "nopad")
    assert AutoTokenizer.from_pretrained(tmp_path / "nopad").pad_token is None
    cases["no pad token"] = dict(base=str(tmp_path / "nopad"), input="text")
    shutil.copytree(bases["llama4"], tmp_path / "small_vocab")
    ft.tiny_tokenizer(tmp_path / "small_vocab", 640)                  # ids past the base's 384 embeddings
    cases["beyond the base's vocabulary"] = dict(base=str(tmp_path / "small_vocab"), input="text")
    # 384 embeddings against the 595 event tokens
    cases["cannot hold the"] = dict(base=str(bases["llama4"]), input="events", tokens=str(ex["tokens"]), n_events=8)
    other = tmp_path / "other_ds"; shutil.copytree(ex["dataset"], other)
    m = json.loads((other / "manifest.json").read_text()); m["created_utc"] = "2020-01-01T00:00:00+00:00"
    (other / "manifest.json").write_text(json.dumps(m))
    cases["belong to another dataset"] = dict(base=str(bases["qwen2"]), input="events", tokens=str(ex["tokens"]), data=str(other))
    for said, kw in cases.items():
        cfg = ft.FinetuneConfig(**{"data": str(ex["dataset"]), "out": str(tmp_path / "never"), **FAST, **kw})
        with pytest.raises(MqbenchError, match=said) as e:
            ft.finetune(cfg)
        assert "\n" not in str(e.value) and not (tmp_path / "never").exists(), said
