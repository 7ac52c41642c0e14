// oneDNN (Debian libdnnl-dev): the matmul primitive behind Kernels' GEMM entry point.
#include <oneapi/dnnl/dnnl.h>
