// bf16 matrix products with float32 accumulation for MindSpore's CPU backend, as ahead-of-time custom operators.
//
// Why: MindSpore 2.10's CPU MatMul runs oneDNN on float32 inputs; oneDNN's "fpmath mode" bf16 down-conversion
// only happens on AMX CPUs. On AVX512-BF16 CPUs without AMX (AMD Zen 4, Intel Cooper Lake) oneDNN's matmul
// primitive is still ~1.9x faster than float32 when it is *given* bf16 inputs (brg_matmul:avx512_core_bf16).
// So each entry point converts its float32 operands to bf16 (a oneDNN reorder: round to nearest even),
// runs oneDNN's bf16 x bf16 -> f32 matmul, and writes float32: the numerics of PyTorch's bf16 autocast for
// matrix products. gpt_exp/backend/bf16_products.py compiles this file with g++ at first use and wraps it in ops.Custom.
//
// It links the libdnnl.so.3 shipped inside MindSpore's wheel, which has no headers, so the few oneDNN C API
// declarations used are written out below (oneDNN 3.x ABI; MindSpore 2.10 ships 3.10, threadpool runtime).
#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <sched.h>
#include <thread>
#include <tuple>
#include <vector>

extern "C" {
typedef int dnnl_status_t;  // 0 = success
typedef int64_t dnnl_dim_t;
typedef dnnl_dim_t dnnl_dims_t[12];
typedef struct dnnl_engine *dnnl_engine_t;
typedef struct dnnl_stream *dnnl_stream_t;
typedef struct dnnl_memory_desc *dnnl_memory_desc_t;
typedef struct dnnl_memory *dnnl_memory_t;
typedef struct dnnl_primitive_desc *dnnl_primitive_desc_t;
typedef struct dnnl_primitive *dnnl_primitive_t;
typedef struct dnnl_primitive_attr *dnnl_primitive_attr_t;
typedef struct {
  int arg;
  dnnl_memory_t memory;
} dnnl_exec_arg_t;
enum { kEngineCpu = 1, kBf16 = 2, kF32 = 3, kQueryImplInfoStr = 8 };
enum { kArgSrc = 1, kArgDst = 17, kArgWeights = 33 };
dnnl_status_t dnnl_engine_create(dnnl_engine_t *, int kind, size_t index);
dnnl_status_t dnnl_threadpool_interop_stream_create(dnnl_stream_t *, dnnl_engine_t, void *threadpool);
dnnl_status_t dnnl_stream_wait(dnnl_stream_t);
dnnl_status_t dnnl_memory_desc_create_with_strides(dnnl_memory_desc_t *, int ndims, const dnnl_dims_t dims,
                                                   int data_type, const dnnl_dims_t strides);
dnnl_status_t dnnl_memory_create(dnnl_memory_t *, const dnnl_memory_desc_t, dnnl_engine_t, void *handle);
dnnl_status_t dnnl_memory_set_data_handle(dnnl_memory_t, void *handle);
dnnl_status_t dnnl_matmul_primitive_desc_create(dnnl_primitive_desc_t *, dnnl_engine_t, const dnnl_memory_desc_t src,
                                                const dnnl_memory_desc_t weights, const dnnl_memory_desc_t bias,
                                                const dnnl_memory_desc_t dst, const dnnl_primitive_attr_t attr);
dnnl_status_t dnnl_reorder_primitive_desc_create(dnnl_primitive_desc_t *, const dnnl_memory_desc_t src,
                                                 dnnl_engine_t, const dnnl_memory_desc_t dst, dnnl_engine_t,
                                                 const dnnl_primitive_attr_t attr);
dnnl_status_t dnnl_primitive_desc_query(const dnnl_primitive_desc_t, int what, int index, void *result);
dnnl_status_t dnnl_primitive_create(dnnl_primitive_t *, const dnnl_primitive_desc_t);
dnnl_status_t dnnl_primitive_execute(const dnnl_primitive_t, dnnl_stream_t, int nargs, const dnnl_exec_arg_t *args);
}

namespace {

// oneDNN's threadpool interface (dnnl_threadpool_iface.hpp). oneDNN 3.11 added wait() after get_flags();
// 3.9/3.10 have the destructor in that slot, which oneDNN never calls on a user's pool, so declaring
// wait() there fits both.
struct ThreadpoolIface {
  virtual int get_num_threads() const = 0;
  virtual bool get_in_parallel() const = 0;
  virtual void parallel_for(int n, const std::function<void(int, int)> &fn) = 0;
  virtual uint64_t get_flags() const = 0;
  virtual void wait() {}
  virtual ~ThreadpoolIface() {}
};

thread_local bool in_pool_task = false;

// A fixed set of worker threads; the calling (MindSpore kernel) thread takes part in every parallel_for.
// Workers spin briefly before sleeping: oneDNN issues one parallel_for per primitive, back to back.
class Pool : public ThreadpoolIface {
 public:
  explicit Pool(int threads) : threads_(std::max(1, threads)) {
    for (int i = 1; i < threads_; i++) workers_.emplace_back([this] { Work(); });
  }
  ~Pool() override {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stop_ = true;
      generation_++;
    }
    wake_.notify_all();
    for (auto &worker : workers_) worker.join();
  }
  int get_num_threads() const override { return threads_; }
  bool get_in_parallel() const override { return in_pool_task; }
  uint64_t get_flags() const override { return 0; }  // synchronous: parallel_for returns when all tasks ran
  void parallel_for(int n, const std::function<void(int, int)> &fn) override {
    if (threads_ == 1 || n <= 1 || in_pool_task) {
      for (int i = 0; i < n; i++) fn(i, n);
      return;
    }
    {
      std::lock_guard<std::mutex> lock(mutex_);
      job_ = &fn;
      tasks_ = n;
      next_.store(0);
      finished_.store(0);
      generation_++;
    }
    wake_.notify_all();
    RunTasks();
    while (finished_.load(std::memory_order_acquire) < n) std::this_thread::yield();
  }

 private:
  void RunTasks() {
    in_pool_task = true;
    for (int i; (i = next_.fetch_add(1)) < tasks_;) {
      (*job_)(i, tasks_);
      finished_.fetch_add(1, std::memory_order_release);
    }
    in_pool_task = false;
  }
  void Work() {
    uint64_t seen = 0;
    for (;;) {
      for (int spin = 0; spin < 20000 && generation_.load() == seen; spin++) __builtin_ia32_pause();
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [&] { return generation_.load() != seen; });
      if (stop_) return;
      seen = generation_.load();
      lock.unlock();
      RunTasks();
    }
  }
  const int threads_;
  std::vector<std::thread> workers_;
  std::mutex mutex_;
  std::condition_variable wake_;
  const std::function<void(int, int)> *job_ = nullptr;
  int tasks_ = 0;
  std::atomic<int> next_{0}, finished_{0};
  std::atomic<uint64_t> generation_{0};
  bool stop_ = false;
};

int DefaultThreads() {
  cpu_set_t set;
  return sched_getaffinity(0, sizeof(set), &set) == 0 ? CPU_COUNT(&set) : 1;
}

#define CHECK_DNNL(call)                                                          \
  do {                                                                            \
    dnnl_status_t status_ = (call);                                               \
    if (status_ != 0) {                                                           \
      fprintf(stderr, "gpt_exp bf16_matmul: %s failed (oneDNN status %d)\n", #call, status_); \
      return status_;                                                             \
    }                                                                             \
  } while (0)

dnnl_memory_desc_t Matrix(dnnl_dim_t rows, dnnl_dim_t cols, bool transposed, int dtype) {
  // rows x cols as oneDNN sees it; `transposed`: stored cols x rows, row-major
  dnnl_dims_t dims = {rows, cols}, strides = {transposed ? 1 : cols, transposed ? rows : 1};
  dnnl_memory_desc_t desc = nullptr;
  dnnl_memory_desc_create_with_strides(&desc, 2, dims, dtype, strides);
  return desc;
}

struct Product {  // one compiled matmul primitive C[M,N] = op(A) op(B) for one shape, with its memory objects
  dnnl_primitive_t primitive = nullptr;
  dnnl_memory_t a = nullptr, b = nullptr, c = nullptr;
  const char *impl = "";
};

struct Conversion {  // one compiled f32 -> bf16 reorder of n elements
  dnnl_primitive_t primitive = nullptr;
  dnnl_memory_t from = nullptr, to = nullptr;
};

class Engine {
 public:
  int SetThreads(int threads) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (engine_ != nullptr && threads == threads_) return 0;
    threads_ = threads;
    pool_.reset(new Pool(threads_));
    return engine_ == nullptr ? Start() : dnnl_threadpool_interop_stream_create(&stream_, engine_, pool_.get());
  }

  // C[M,N] = op(A)[M,K] op(B)[K,N], A and B float32 (transposed: stored the other way round), C float32
  int Multiply(const float *a, const float *b, float *c, int64_t m, int64_t k, int64_t n, bool ta, bool tb) {
    std::lock_guard<std::mutex> lock(mutex_);  // MindSpore may launch two products at once: one pool, one scratch
    if (engine_ == nullptr && Start() != 0) return 1;
    auto started = std::chrono::steady_clock::now();
    int status = MultiplyLocked(a, b, c, m, k, n, ta, tb);
    seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    return status;
  }

  double Seconds() {
    std::lock_guard<std::mutex> lock(mutex_);
    return seconds_;
  }

  const char *Implementation(int64_t m, int64_t k, int64_t n) {
    std::lock_guard<std::mutex> lock(mutex_);
    Product *product = nullptr;
    if ((engine_ == nullptr && Start() != 0) || Compile(m, k, n, false, false, &product) != 0) return "";
    return product->impl;
  }

 private:
  int MultiplyLocked(const float *a, const float *b, float *c, int64_t m, int64_t k, int64_t n, bool ta, bool tb) {
    Product *product = nullptr;
    CHECK_DNNL(Compile(m, k, n, ta, tb, &product));
    if (a_bf16_.size() < size_t(m * k)) a_bf16_.resize(m * k);
    if (b_bf16_.size() < size_t(k * n)) b_bf16_.resize(k * n);
    CHECK_DNNL(ToBf16(a, a_bf16_.data(), m * k));
    CHECK_DNNL(ToBf16(b, b_bf16_.data(), k * n));
    CHECK_DNNL(dnnl_memory_set_data_handle(product->a, a_bf16_.data()));
    CHECK_DNNL(dnnl_memory_set_data_handle(product->b, b_bf16_.data()));
    CHECK_DNNL(dnnl_memory_set_data_handle(product->c, c));
    dnnl_exec_arg_t args[3] = {{kArgSrc, product->a}, {kArgWeights, product->b}, {kArgDst, product->c}};
    CHECK_DNNL(dnnl_primitive_execute(product->primitive, stream_, 3, args));
    return dnnl_stream_wait(stream_);
  }

  int Start() {
    if (!pool_) pool_.reset(new Pool(threads_ = DefaultThreads()));
    CHECK_DNNL(dnnl_engine_create(&engine_, kEngineCpu, 0));
    return dnnl_threadpool_interop_stream_create(&stream_, engine_, pool_.get());
  }

  int Compile(int64_t m, int64_t k, int64_t n, bool ta, bool tb, Product **out) {
    auto key = std::make_tuple(m, k, n, ta, tb);
    auto found = products_.find(key);
    if (found != products_.end()) return *out = &found->second, 0;
    Product product;
    dnnl_memory_desc_t a = Matrix(m, k, ta, kBf16), b = Matrix(k, n, tb, kBf16), c = Matrix(m, n, false, kF32);
    dnnl_primitive_desc_t desc = nullptr;
    CHECK_DNNL(dnnl_matmul_primitive_desc_create(&desc, engine_, a, b, nullptr, c, nullptr));
    CHECK_DNNL(dnnl_primitive_desc_query(desc, kQueryImplInfoStr, 0, &product.impl));
    CHECK_DNNL(dnnl_primitive_create(&product.primitive, desc));
    CHECK_DNNL(dnnl_memory_create(&product.a, a, engine_, nullptr));
    CHECK_DNNL(dnnl_memory_create(&product.b, b, engine_, nullptr));
    CHECK_DNNL(dnnl_memory_create(&product.c, c, engine_, nullptr));
    *out = &(products_[key] = product);
    return 0;
  }

  int ToBf16(const float *from, uint16_t *to, int64_t count) {
    auto found = conversions_.find(count);
    if (found == conversions_.end()) {
      Conversion conversion;
      dnnl_memory_desc_t f32 = Matrix(1, count, false, kF32), bf16 = Matrix(1, count, false, kBf16);
      dnnl_primitive_desc_t desc = nullptr;
      CHECK_DNNL(dnnl_reorder_primitive_desc_create(&desc, f32, engine_, bf16, engine_, nullptr));
      CHECK_DNNL(dnnl_primitive_create(&conversion.primitive, desc));
      CHECK_DNNL(dnnl_memory_create(&conversion.from, f32, engine_, nullptr));
      CHECK_DNNL(dnnl_memory_create(&conversion.to, bf16, engine_, nullptr));
      found = conversions_.emplace(count, conversion).first;
    }
    Conversion &conversion = found->second;
    CHECK_DNNL(dnnl_memory_set_data_handle(conversion.from, const_cast<float *>(from)));
    CHECK_DNNL(dnnl_memory_set_data_handle(conversion.to, to));
    dnnl_exec_arg_t args[2] = {{kArgSrc, conversion.from}, {kArgDst, conversion.to}};
    return dnnl_primitive_execute(conversion.primitive, stream_, 2, args);
  }

  std::mutex mutex_;
  int threads_ = 0;
  std::unique_ptr<Pool> pool_;
  dnnl_engine_t engine_ = nullptr;
  dnnl_stream_t stream_ = nullptr;
  std::map<std::tuple<int64_t, int64_t, int64_t, bool, bool>, Product> products_;
  std::map<int64_t, Conversion> conversions_;
  std::vector<uint16_t> a_bf16_, b_bf16_;
  double seconds_ = 0;  // wall time inside the products so far (conversions included)
};

Engine &TheEngine() {
  static Engine *engine = new Engine();  // never destroyed: MindSpore may run a kernel during interpreter exit
  return *engine;
}

// MindSpore's AOT calling convention: params = inputs then outputs; shapes[i] has ndims[i] entries.
int Launch(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes, bool ta, bool tb) {
  if (nparam != 3 || ndims[0] != 2 || ndims[1] != 2 || ndims[2] != 2) {
    fprintf(stderr, "gpt_exp bf16_matmul: expects two 2-D float32 inputs and one output\n");
    return 1;
  }
  for (int i = 0; i < 3; i++) {
    if (strcmp(dtypes[i], "float32") != 0) {
      fprintf(stderr, "gpt_exp bf16_matmul: operand %d is %s, not float32\n", i, dtypes[i]);
      return 1;
    }
  }
  int64_t m = shapes[2][0], n = shapes[2][1], k = ta ? shapes[0][0] : shapes[0][1];
  return TheEngine().Multiply(static_cast<const float *>(params[0]), static_cast<const float *>(params[1]),
                              static_cast<float *>(params[2]), m, k, n, ta, tb);
}

}  // namespace

extern "C" {
// C = A B, A [M,K], B [K,N]
int MatMulNN(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes, void *, void *) {
  return Launch(nparam, params, ndims, shapes, dtypes, false, false);
}
// C = A B^T, A [M,K], B [N,K]
int MatMulNT(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes, void *, void *) {
  return Launch(nparam, params, ndims, shapes, dtypes, false, true);
}
// C = A^T B, A [K,M], B [K,N]
int MatMulTN(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes, void *, void *) {
  return Launch(nparam, params, ndims, shapes, dtypes, true, false);
}
// Threads of the pool oneDNN runs on (default: the CPUs this process may use).
int Bf16MatMulSetThreads(int threads) { return TheEngine().SetThreads(threads); }
// Wall seconds spent in the products so far in this process (for profiles: their share of a step).
double Bf16MatMulSeconds() { return TheEngine().Seconds(); }
// The oneDNN implementation a bf16 M x K x N product runs on here, e.g. "brg_matmul:avx512_core_bf16".
const char *Bf16MatMulImplementation(int64_t m, int64_t k, int64_t n) { return TheEngine().Implementation(m, k, n); }
}
