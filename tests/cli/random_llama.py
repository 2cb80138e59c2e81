"""Random-weight Llama checkpoints of any size, for memory tests and benchmarks: a Hugging Face
directory (config.json + one model.safetensors, F32, F16 or BF16) or a llama GGUF in any type
gguf_writer encodes (the GGUF holds the same shapes with q/k already in llama.cpp's layout;
the weights of the two are not the same values). Written one tensor at a time: memory stays at
one tensor whatever the model size.

Values: matrices N(0, std), norm weights 1 + N(0, std). A tensor's data is a run of whole blocks
taken cyclically, from a random start, out of a pool of 2^22 values encoded once, so a
7B-shaped model is written at disk speed instead of drawing 7 billion normals.

    random_llama.py --format hf|gguf --type BF16 --dim 4096 --layers 32 --heads 32
                    --kv-heads 8 --hidden 14336 --vocab 32000 [--tied] [--seed 0] OUT
"""
import argparse
import json
import os
import struct

import numpy as np

import gguf_writer

POOL_VALUES = 1 << 22


class Shape:
    def __init__(self, dim, hidden, layers, heads, kv_heads, vocab, tied=False, theta=10000.0,
                 eps=1e-5, context=4096):
        self.dim, self.hidden, self.layers, self.heads = dim, hidden, layers, heads
        self.kv_heads, self.vocab, self.tied = kv_heads, vocab, tied
        self.theta, self.eps, self.context = theta, eps, context
        self.head_dim = dim // heads

    def hf_tensors(self):
        """[(name, shape)] in the order HF checkpoints list them."""
        q, kv = self.heads * self.head_dim, self.kv_heads * self.head_dim
        out = [("model.embed_tokens.weight", (self.vocab, self.dim))]
        for layer in range(self.layers):
            p = f"model.layers.{layer}."
            out += [(p + "input_layernorm.weight", (self.dim,)),
                    (p + "self_attn.q_proj.weight", (q, self.dim)),
                    (p + "self_attn.k_proj.weight", (kv, self.dim)),
                    (p + "self_attn.v_proj.weight", (kv, self.dim)),
                    (p + "self_attn.o_proj.weight", (self.dim, q)),
                    (p + "post_attention_layernorm.weight", (self.dim,)),
                    (p + "mlp.gate_proj.weight", (self.hidden, self.dim)),
                    (p + "mlp.up_proj.weight", (self.hidden, self.dim)),
                    (p + "mlp.down_proj.weight", (self.dim, self.hidden))]
        out.append(("model.norm.weight", (self.dim,)))
        if not self.tied:
            out.append(("lm_head.weight", (self.vocab, self.dim)))
        return out

    def parameters(self):
        return sum(int(np.prod(s)) for _, s in self.hf_tensors())

    def config(self, dtype="F32"):
        return {"model_type": "llama", "architectures": ["LlamaForCausalLM"],
                "hidden_size": self.dim, "intermediate_size": self.hidden,
                "num_hidden_layers": self.layers, "num_attention_heads": self.heads,
                "num_key_value_heads": self.kv_heads, "vocab_size": self.vocab,
                "max_position_embeddings": self.context, "rms_norm_eps": self.eps,
                "rope_theta": self.theta, "hidden_act": "silu", "tie_word_embeddings": self.tied,
                "torch_dtype": {"F32": "float32", "F16": "float16", "BF16": "bfloat16"}[dtype]}


class Pool:
    """Encoded random values of one type, handed out as runs of whole blocks."""

    def __init__(self, type_name, seed, std=0.02, offset=0.0):
        values = offset + std * np.random.default_rng(seed).standard_normal(POOL_VALUES, np.float32)
        self.block, self.block_bytes = gguf_writer.BLOCKS[type_name]
        raw = gguf_writer.encode(values, type_name)
        self.blocks = np.frombuffer(raw, np.uint8).reshape(-1, self.block_bytes)
        self.rng = np.random.default_rng(seed + 1)

    def take(self, count):
        """The bytes of `count` values (whole blocks)."""
        n = count // self.block
        start = int(self.rng.integers(len(self.blocks)))
        return self.blocks[(start + np.arange(n)) % len(self.blocks)].tobytes()


def write_hf(directory, shape, dtype="BF16", seed=0):
    """config.json + model.safetensors in `dtype`; returns the safetensors size in bytes."""
    os.makedirs(directory)
    with open(os.path.join(directory, "config.json"), "w") as f:
        json.dump(shape.config(dtype), f, indent=1)
    matrices, norms = Pool(dtype, seed), Pool(dtype, seed + 2, offset=1.0)
    size = gguf_writer.BLOCKS[dtype][1]
    header, offset = {"__metadata__": {"format": "pt"}}, 0
    for name, s in shape.hf_tensors():
        n = size * int(np.prod(s))
        header[name] = {"dtype": dtype, "shape": list(s), "data_offsets": [offset, offset + n]}
        offset += n
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(os.path.join(directory, "model.safetensors"), "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text)
        for name, s in shape.hf_tensors():
            f.write((norms if len(s) == 1 else matrices).take(int(np.prod(s))))
    return offset


def write_gguf(path, shape, type_name="BF16", seed=0):
    """A llama GGUF: matrices in `type_name`, norm weights F32. Returns the file size."""
    cfg = shape.config()
    matrices, norms = Pool(type_name, seed), Pool("F32", seed + 2, offset=1.0)
    tensors = []
    for name, s in shape.hf_tensors():
        pool, gtype = (norms, "F32") if len(s) == 1 else (matrices, type_name)
        count = int(np.prod(s))
        tensors.append((gguf_writer.gguf_name(name), tuple(reversed(s)),
                        gguf_writer.GGML_TYPES[gtype], lambda p=pool, c=count: p.take(c)))
    gguf_writer.write_gguf(path, gguf_writer.llama_metadata(cfg), tensors)
    return os.path.getsize(path)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--format", choices=("hf", "gguf"), required=True)
    ap.add_argument("--type", default="BF16")
    for key in ("dim", "layers", "heads", "kv-heads", "hidden", "vocab"):
        ap.add_argument(f"--{key}", type=int, required=True)
    ap.add_argument("--tied", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("out")
    a = ap.parse_args()
    shape = Shape(a.dim, a.hidden, a.layers, a.heads, a.kv_heads, a.vocab, a.tied)
    if a.format == "hf":
        size = write_hf(a.out, shape, a.type, a.seed)
    else:
        size = write_gguf(a.out, shape, a.type, a.seed)
    print(f"{a.out}: {shape.parameters() / 1e9:.2f}B parameters, {size / 1e9:.2f} GB")


if __name__ == "__main__":
    main()
