// freq-norms' two readers on the same files: in place (mapped) and through HDF5.
#include <doctest/doctest.h>
#include <hdf5.h>

#include <cmath>
#include <string>
#include <vector>

#include "ropekit/analysis/freq_norms.hpp"
#include "ropekit/core/dtype.hpp"
#include "ropekit/core/normal_samples.hpp"
#include "ropekit/core/threads.hpp"
#include "test_support.hpp"

using namespace ropekit;

namespace {

struct Storage {
    bool chunked = false;
    bool f16 = false;
    hsize_t userblock = 0;
};

// A two-layer dump [batch 3, pos 40, head 4, dim 16] written with HDF5's defaults (contiguous,
// as h5py writes) or chunked; h5py's float16 type for f16.
std::string write_dump(const test::TempDir& dir, const std::string& name, const Storage& layout,
                       float poison = 0.0f) {
    const std::string path = dir.file(name);
    const hid_t fcpl = H5Pcreate(H5P_FILE_CREATE);
    if (layout.userblock) H5Pset_userblock(fcpl, layout.userblock);
    const hid_t file = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, fcpl, H5P_DEFAULT);
    const hsize_t dims[4] = {3, 40, 4, 16}, chunk[4] = {1, 8, 4, 16};
    const std::size_t n = 3 * 40 * 4 * 16;
    const hid_t half = H5Tcopy(H5T_IEEE_F32LE);
    H5Tset_fields(half, 15, 10, 5, 0, 10);
    H5Tset_size(half, 2);
    H5Tset_ebias(half, 15);
    std::uint64_t stream = 0;
    for (const char* hook : {"hook_q", "hook_k"}) {
        for (int layer = 0; layer < 2; ++layer) {
            std::vector<float> v(n);
            fill_standard_normal(4, stream++, v.data(), n);
            if (poison != 0.0f && layer == 1) v[n - 5] = poison;
            const hid_t space = H5Screate_simple(4, dims, nullptr);
            const hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
            if (layout.chunked) H5Pset_chunk(dcpl, 4, chunk);
            const std::string ds = "blocks." + std::to_string(layer) + ".attn." + hook;
            const hid_t d = H5Dcreate2(file, ds.c_str(), layout.f16 ? half : H5T_IEEE_F32LE, space,
                                       H5P_DEFAULT, dcpl, H5P_DEFAULT);
            H5Dwrite(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, v.data());
            H5Dclose(d);
            H5Pclose(dcpl);
            H5Sclose(space);
        }
    }
    H5Tclose(half);
    H5Fclose(file);
    H5Pclose(fcpl);
    return path;
}

// Sequences [first, first + count) when count > 0, as freq-norms (and each MPI rank) restricts.
FreqNorms norms(const std::string& path, bool in_place, bool exclude_bos = false,
                std::size_t first = 0, std::size_t count = 0) {
    std::vector<H5Input> files;
    files.push_back(H5Input::open(path));
    DumpReader dump = open_dump(files, DumpOptions{}, std::nullopt);
    if (count > 0) dump.restrict_sequences(first, count);
    FreqNormsOptions options;
    options.read_in_place = in_place;
    options.exclude_bos = exclude_bos;
    return compute_freq_norms(dump, options);
}

}  // namespace

TEST_CASE("contiguous_storage: only plain contiguous f32/f16 in a file opened by path") {
    test::TempDir dir;
    const H5Input contiguous = H5Input::open(write_dump(dir, "c.h5", {}));
    const auto storage = contiguous.contiguous_storage("blocks.0.attn.hook_q");
    REQUIRE(storage.has_value());
    CHECK(storage->bytes == 3 * 40 * 4 * 16 * 4);
    CHECK(storage->dtype == DType::f32);
    const H5Input half = H5Input::open(write_dump(dir, "h.h5", {false, true}));
    CHECK(half.contiguous_storage("blocks.0.attn.hook_q")->dtype == DType::f16);
    const H5Input chunked = H5Input::open(write_dump(dir, "k.h5", {true}));
    CHECK_FALSE(chunked.contiguous_storage("blocks.0.attn.hook_q").has_value());
}

TEST_CASE("the in-place reader and HDF5 give identical norms on the same file") {
    test::TempDir dir;
    for (const Storage layout : {Storage{}, Storage{false, true}, Storage{false, false, 4096}}) {
        CAPTURE(layout.f16);
        CAPTURE(layout.userblock);
        const std::string path = write_dump(dir, "d.h5", layout);
        for (bool exclude_bos : {false, true}) {
            const FreqNorms fast = norms(path, true, exclude_bos),
                            slow = norms(path, false, exclude_bos);
            CHECK(fast.positions == slow.positions);
            CHECK(fast.q.norms.data == slow.q.norms.data);
            CHECK(fast.k.norms.data == slow.k.norms.data);
            // Independent check of one entry: head 1, chunk 0 (dims 0 and 8) of layer 0's q.
            const H5Input in = H5Input::open(path);
            const Tensor<float> q = in.read_float("blocks.0.attn.hook_q");
            double sum = 0;
            for (std::size_t b = 0; b < 3; ++b) {
                for (std::size_t t = exclude_bos ? 1 : 0; t < 40; ++t) {
                    const float x = q({b, t, 1, 0}), y = q({b, t, 1, 8});
                    sum += std::sqrt(double(x) * x + double(y) * y);
                }
            }
            CHECK(fast.q.norms({0, 1, 0}) ==
                  doctest::Approx(sum / (exclude_bos ? 117.0 : 120.0)).epsilon(1e-6));
        }
    }
}

TEST_CASE("NaN and inf: both readers name the same element") {
    test::TempDir dir;
    for (const Storage layout : {Storage{}, Storage{false, true}}) {
        const std::string path = write_dump(dir, "nan.h5", layout, NAN);
        const std::string fast = test::error_of([&] { norms(path, true); });
        CHECK(fast == test::error_of([&] { norms(path, false); }));
        CHECK(fast.find("NaN at batch 2, pos 39, head 3, dim 11") != std::string::npos);
    }
}

TEST_CASE("a restricted range of sequences is read in place, and only those sequences") {
    test::TempDir dir;
    const std::string path = write_dump(dir, "r.h5", {});
    std::vector<H5Input> files;
    files.push_back(H5Input::open(path));
    DumpReader dump = open_dump(files, DumpOptions{}, std::nullopt);
    const auto whole = files.front().contiguous_storage("blocks.0.attn.hook_q");
    REQUIRE(whole.has_value());
    const std::uint64_t sequence = 40 * 4 * 16 * 4;
    CHECK(whole->bytes == 3 * sequence);
    dump.restrict_sequences(0, 3);  // what freq-norms does on one process: still in place
    const auto first = dump.sequence_in_place(0, Hook::q, 0);
    REQUIRE(first.has_value());
    CHECK(first->offset == whole->offset);
    CHECK(first->bytes == sequence);
    CHECK(first->path == path);
    dump.restrict_sequences(1, 2);
    const auto part = dump.sequence_in_place(0, Hook::q, 1);  // the file's sequence 2
    REQUIRE(part.has_value());
    CHECK(part->offset == whole->offset + 2 * sequence);
    CHECK(part->bytes == sequence);

    const FreqNorms fast = norms(path, true, false, 1, 2), slow = norms(path, false, false, 1, 2);
    CHECK(fast.datasets_read_in_place == 4);
    CHECK(slow.datasets_read_in_place == 0);
    CHECK(fast.positions == 80);
    CHECK(fast.q.norms.data == slow.q.norms.data);
    // Independent: layer 1's k, head 3, chunk 5 (dims 5 and 13) over sequences 1 and 2 only.
    const Tensor<float> k = files.front().read_float("blocks.1.attn.hook_k");
    double sum = 0;
    for (std::size_t b = 1; b < 3; ++b) {
        for (std::size_t t = 0; t < 40; ++t) {
            const float x = k({b, t, 3, 5}), y = k({b, t, 3, 13});
            sum += std::sqrt(double(x) * x + double(y) * y);
        }
    }
    CHECK(fast.k.norms({1, 3, 5}) == doctest::Approx(sum / 80.0).epsilon(1e-6));
}

TEST_CASE("in-place reads on 1, 2 and 3 threads give the same bits; errors name the same element") {
    test::TempDir dir;
    const std::string path = write_dump(dir, "t.h5", {}),
                      bad = write_dump(dir, "b.h5", {}, INFINITY);
    set_thread_count(1);
    const FreqNorms one = norms(path, true);
    const std::string error_one = test::error_of([&] { norms(bad, true); });
    for (int threads : {2, 3}) {
        CAPTURE(threads);
        set_thread_count(threads);
        const FreqNorms many = norms(path, true);
        CHECK(many.datasets_read_in_place == 4);
        CHECK(many.q.sums.data == one.q.sums.data);
        CHECK(many.k.sums.data == one.k.sums.data);
        CHECK(test::error_of([&] { norms(bad, true); }) == error_one);
    }
    set_thread_count(0);
    CHECK(error_one.find("inf at batch 2, pos 39, head 3, dim 11") != std::string::npos);
}
