"""Train: full-parameter continual pretraining of a VLM on the stream, day by day.

`core/config.py` (TrainConfig), `samples.py` (what the model sees and must predict), `loss.py` (target-only
loss without full-vocabulary logits, FLOP accounting), `engine.py` (FSDP2, the loop, checkpoints,
Day-N exports), `launch.py` (torchrun and SLURM).
"""
