"""Published model shapes, each with its source: :data:`MODELS`.

Examples
--------
>>> sorted(MODELS)[:3]
['deepseek-v3', 'gpt3-175b', 'llama3-405b']
>>> round(MODELS["llama3-405b"].parameters() / 1e9, 1)
405.8
"""

from types import MappingProxyType

from collectives.training.model import Transformer

MODELS = MappingProxyType(
    {
        # Brown et al. 2020 (GPT-3), Table 2.1: 96 layers, d_model 12288, 96 heads of 128,
        # context 2048; GPT-2 BPE vocabulary 50,257 (Radford et al. 2019), output head tied
        # to the embedding as in GPT-2. Dropout as in GPT-2 and Megatron-LM's GPT-3 example.
        "gpt3-175b": Transformer(
            layers=96, hidden=12288, heads=96, seq_len=2048, vocab=50257, mlp="gelu",
            tied_embeddings=True, dropout=True, name="gpt3-175b",
        ),
        # Llama 3 paper ("The Llama 3 Herd of Models", 2024), Table 3: 32 layers, model dim
        # 4096, FFN 14,336, 32 heads, 8 KV heads, vocabulary 128,000 (the released tokenizer
        # has 128,256 with reserved special tokens); 8K sequences (section 3.4.1); untied;
        # SwiGLU; no dropout (released config: attention_dropout 0.0).
        "llama3-8b": Transformer(
            layers=32, hidden=4096, heads=32, kv_heads=8, ffn_hidden=14336, mlp="swiglu",
            seq_len=8192, vocab=128000, dropout=False, name="llama3-8b",
        ),
        # Llama 3 paper, Table 3: 80 layers, model dim 8192, FFN 28,672, 64 heads, 8 KV heads.
        "llama3-70b": Transformer(
            layers=80, hidden=8192, heads=64, kv_heads=8, ffn_hidden=28672, mlp="swiglu",
            seq_len=8192, vocab=128000, dropout=False, name="llama3-70b",
        ),
        # Llama 3 paper, Table 3: 126 layers, model dim 16,384, FFN 53,248, 128 heads, 8 KV
        # heads, vocabulary 128,000; trained on 8,192-token sequences before long-context
        # training (Table 4, section 3.4).
        "llama3-405b": Transformer(
            layers=126, hidden=16384, heads=128, kv_heads=8, ffn_hidden=53248, mlp="swiglu",
            seq_len=8192, vocab=128000, dropout=False, name="llama3-405b",
        ),
        # Jiang et al. 2024 ("Mixtral of Experts"), Table 1: dim 4096, 32 layers, 32 heads of
        # 128, 8 KV heads, hidden_dim 14,336, vocabulary 32,000, 8 experts, top-2, every
        # layer MoE. The paper gives a 32K context but no training sequence length; 4,096 is
        # our choice (Mistral 7B's attention window, and the length Megatron/NeMo Mixtral
        # recipes train at).
        "mixtral-8x7b": Transformer(
            layers=32, hidden=4096, heads=32, kv_heads=8, ffn_hidden=14336, mlp="swiglu",
            seq_len=4096, vocab=32000, experts=8, top_k=2, dropout=False, name="mixtral-8x7b",
        ),
        # DeepSeek-V3 (DeepSeek-AI 2024, arXiv 2412.19437, section 4.2; released config.json):
        # 61 layers, hidden 7168, 128 heads, the first 3 layers dense (FFN 18,432), then MoE
        # layers of 256 routed experts (FFN 2,048, top-8) and 1 shared expert; multi-head latent
        # attention with q and kv latents of 1,536 and 512, heads of 128 + 64 (rotary) for query
        # and key and 128 for value; vocabulary 129,280; pre-training sequences of 4K. The
        # multi-token-prediction module is not counted.
        "deepseek-v3": Transformer(
            layers=61, hidden=7168, heads=128, ffn_hidden=18432, mlp="swiglu", seq_len=4096, vocab=129280,
            experts=256, top_k=8, expert_ffn_hidden=2048, first_dense_layers=3, shared_experts=1,
            kv_lora_rank=512, q_lora_rank=1536, qk_head_dim=128, qk_rope_head_dim=64, v_head_dim=128,
            dropout=False, name="deepseek-v3",
        ),
    }
)
