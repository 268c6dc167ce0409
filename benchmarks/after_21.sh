# Issue 21, after the changes (one H200 call; the smol weights and the tours arrive through gpu_setup.sh):
# the 7B operating point (24 layers, 600 pairs of 6x12 patches = 10,800 vision + ~1,170 text tokens),
# benchmark fwd+bwd and `streamlearn train` side by side; the short shape (3B, 4 layers, 144 vision + ~300
# text) packed 64 a step; then the knowledge study's tuning grid on tour 1 (its train runs are the smol
# preset's tokens/s on a 36-chunk corpus).
set -o pipefail
. benchmarks/gpu_setup.sh
B="python3 benchmarks/train_step.py"
timeout 200 $B --arch qwen2.5-vl-7b --layers 24 --pairs 600 --grid 6x12 --text 1170 --modes ours+compile+text \
   --product --product-steps 6 --json $OUT/train_step_7b.json 2>&1 | grep -v Warn | tee $OUT/log.txt
timeout 120 $B --arch qwen2.5-vl-3b --layers 4 --pairs 8 --grid 6x12 --text 300 --modes ours+compile+text \
   --product --product-steps 5 --product-accum 64 --json $OUT/train_step_short.json 2>&1 | grep -v Warn | tee -a $OUT/log.txt
timeout $((${STUDY_S:-200})) python3 benchmarks/knowledge_study.py --corpus /tmp/study/tour1/corpus --train-days 1-3 \
   --recipes ${RECIPES:-diverse,demo} --systems weights --out $OUT/study_tune.json 2>&1 | tail -12 | tee -a $OUT/log.txt
