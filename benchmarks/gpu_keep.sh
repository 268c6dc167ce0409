# The first of two calls that bring the smol weights (see benchmarks/gpu_setup.sh): keep the first part.
mkdir -p /root/keep && cp .carry/gguf.0 /root/keep/ && ls -la /root/keep
