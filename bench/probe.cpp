// Machine limits for bench/run, measured in the same run as the tools:
//   probe read FILE          page-cache read bandwidth of FILE: read() only, read() + sum,
//                            mmap + sum (GB/s, best of 5 passes each).
//   probe sgemm M N K T      OpenBLAS sgemm C[MxN] = A[MxK] B[KxN] with T threads, best of
//                            enough repetitions to take ~0.3 s: prints GFLOP/s.
// Built by bench/run with g++ -O3 -march=native; not part of the library.
#include <cblas.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

static double now() {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

// Best of 5 passes over the file, three ways: read() without touching the data (what dd does),
// read() then an integer sum of every word (what a reader does), mmap then the same sum.
static int read_bandwidth(const char* path) {
    const size_t piece = 1u << 20;
    std::vector<std::uint32_t> buf(piece / sizeof(std::uint32_t));
    double best[3] = {1e30, 1e30, 1e30}, bytes = 0;
    std::uint32_t sink = 0;
    for (int pass = 0; pass < 5; ++pass) {
        for (int way = 0; way < 3; ++way) {
            const int fd = open(path, O_RDONLY);
            if (fd < 0) return perror(path), 1;
            const double t0 = now();
            size_t total = 0;
            if (way < 2) {
                for (;;) {
                    const ssize_t n = read(fd, buf.data(), piece);
                    if (n <= 0) break;
                    if (way == 1)
                        for (size_t i = 0; i < size_t(n) / 4; ++i) sink += buf[i];
                    total += static_cast<size_t>(n);
                }
            } else {
                struct stat st;
                fstat(fd, &st);
                total = static_cast<size_t>(st.st_size);
                void* m = mmap(nullptr, total, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
                if (m == MAP_FAILED) return perror("mmap"), 1;
                const auto* w = static_cast<const std::uint32_t*>(m);
                for (size_t i = 0; i < total / 4; ++i) sink += w[i];
                munmap(m, total);
            }
            best[way] = std::min(best[way], now() - t0);
            bytes = static_cast<double>(total);
            close(fd);
        }
    }
    std::printf("%.3f %.3f %.3f %s\n", bytes / best[0] / 1e9, bytes / best[1] / 1e9,
                bytes / best[2] / 1e9, sink == 12345 ? "!" : "");
    return 0;
}

static int sgemm(int m, int n, int k, int threads) {
    openblas_set_num_threads(threads);
    std::vector<float> a(size_t(m) * k), b(size_t(k) * n), c(size_t(m) * n);
    for (size_t i = 0; i < a.size(); ++i) a[i] = float(i % 17) * 0.01f;
    for (size_t i = 0; i < b.size(); ++i) b[i] = float(i % 13) * 0.02f;
    double best = 1e30, spent = 0;
    for (int rep = 0; rep < 1000 && (rep < 5 || spent < 0.3); ++rep) {
        const double t0 = now();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, n, k, 1.0f, a.data(), k, b.data(),
                    n, 0.0f, c.data(), n);
        const double t = now() - t0;
        best = std::min(best, t);
        spent += t;
    }
    std::printf("%.1f %s\n", 2.0 * m * n * k / best / 1e9, openblas_get_corename());
    return 0;
}

int main(int argc, char** argv) {
    if (argc == 3 && !std::strcmp(argv[1], "read")) return read_bandwidth(argv[2]);
    if (argc == 6 && !std::strcmp(argv[1], "sgemm"))
        return sgemm(std::atoi(argv[2]), std::atoi(argv[3]), std::atoi(argv[4]),
                     std::atoi(argv[5]));
    std::fprintf(stderr, "usage: probe read FILE | probe sgemm M N K THREADS\n");
    return 2;
}
