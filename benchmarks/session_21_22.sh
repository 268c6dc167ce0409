# Issue 21's profile after the changes and issue 22's recipe grid, in the calls of one device session
# (the smol weights and the sentence encoder kept by benchmarks/gpu_keep.sh in the calls before):
#   PART=profile  the 7B operating point, `streamlearn train` under torch.profiler beside the fwd+bwd benchmark
#   PART=tune     recipes ($RECIPES) on tour 1, weights only (the tour the recipe is chosen on)
#   PART=report   recipes ($RECIPES) on tour 2 with ${SYSTEMS:-weights,rag} (the tour that is reported)
#   PART=rag      rag alone on tour 2's runs of $RECIPES trained by a PART=report call just before (same machine)
set -o pipefail
. benchmarks/gpu_setup.sh
S="python3 benchmarks/knowledge_study.py --train-days 1-3"
case "$PART" in
profile)
  timeout 240 python3 benchmarks/train_step.py --arch qwen2.5-vl-7b --layers 24 --pairs 600 --grid 6x12 --text 1170 \
     --modes ours+compile+text --product --product-steps 6 --profile --tag b7_after_ --json $OUT/train_step_7b.json \
     2>&1 | grep -v Warn | tee $OUT/log.txt
  rm -rf $OUT/b7_after_bench
  # the smol preset's step under the profiler, inside one recipe of the grid
  timeout 150 $S --corpus /tmp/study/tour1/corpus --recipes ga8_lr4 --systems weights \
     --set "profile_dir=\"$OUT/smol_after_product\"" --out $OUT/study_tune_a.json 2>&1 | tail -12 | tee -a $OUT/log.txt ;;
tune)
  timeout ${STUDY_S:-560} $S --corpus /tmp/study/tour1/corpus --recipes $RECIPES --systems weights \
     --out $OUT/study_tune_$TAG.json 2>&1 | tail -20 | tee $OUT/log.txt ;;
report)
  timeout ${STUDY_S:-560} $S --corpus /tmp/study/tour2/corpus --recipes $RECIPES --systems ${SYSTEMS:-weights,rag} \
     --out $OUT/study_report_$TAG.json 2>&1 | tail -20 | tee $OUT/log.txt ;;
rag)
  timeout ${STUDY_S:-560} $S --corpus /tmp/study/tour2/corpus --recipes $RECIPES --systems rag --eval-only \
     --out $OUT/study_rag_$TAG.json 2>&1 | tail -20 | tee $OUT/log.txt ;;
esac
