# Issue 21's first measurement: where a training step's time goes, before any change (one H200 call).
# The short shape (3B architecture, 4 decoder layers, 8 frame pairs = 144 vision + ~300 text tokens) and
# the 7B operating point (24 layers, 600 pairs of 8x12 patches = 10,800 vision + ~1,170 text tokens):
# the benchmark's fwd+bwd and `streamlearn train` itself, each under torch.profiler.
set -o pipefail
. benchmarks/gpu_setup.sh
B="python3 benchmarks/train_step.py --json="
$B --arch qwen2.5-vl-3b --layers 4 --pairs 8 --grid 6x12 --text 300 --modes ours+compile+text --product \
   --product-steps 8 --profile --tag short_ 2>&1 | grep -v Warning | tee $OUT/log.txt
$B --arch qwen2.5-vl-3b --layers 28 --pairs 8 --grid 6x12 --text 300 --modes ours+compile+text 2>&1 \
   | grep -v Warning | tee -a $OUT/log.txt
$B --arch qwen2.5-vl-7b --layers 24 --pairs 600 --grid 8x12 --text 1170 --modes ours+compile+text --product \
   --product-steps 6 --profile --tag b7_ 2>&1 | grep -v Warning | tee -a $OUT/log.txt
rm -rf $OUT/b7_bench
ls -la $OUT $OUT/*
