#include <doctest/doctest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "ropekit/core/error.hpp"
#include "ropekit/hdf5/h5io.hpp"
#include "test_support.hpp"

using namespace ropekit;
using namespace ropekit::test;
namespace fs = std::filesystem;

namespace {

Tensor<float> ramp(Shape shape) {
    Tensor<float> t(std::move(shape));
    for (std::size_t i = 0; i < t.size(); ++i) t.data[i] = static_cast<float>(i) * 0.25f - 3.0f;
    return t;
}

std::string write_sample(const TempDir& dir, const std::string& name = "sample.h5") {
    const std::string path = dir.file(name);
    H5Output out = H5Output::create(path, {});
    out.write("x", ramp({2, 3, 4}), {"a", "b", "c"}, "widgets");
    out.write("half", ramp({5}), {}, "", DType::f16);
    out.write("brain", ramp({5}), {}, "", DType::bf16);
    out.write("wide", Tensor<double>({2}, 0.1));
    Tensor<std::int64_t> ids({3});
    ids.data = {7, -1, 42};
    out.write("ids", ids);
    out.set_attr("/", "theta", 500000.0);
    out.set_attr("/", "layout", std::string("half"));
    out.set_attr("x", "list", std::vector<std::string>{"p", "q"});
    out.commit("unit", "unit --test", "previous step");
    return path;
}

}  // namespace

TEST_CASE("a 2-D attribute keeps its shape; 1-D and scalar ones read as tensors too") {
    TempDir dir;
    const std::string path = dir.file("table.h5");
    H5Output out = H5Output::create(path, {});
    Tensor<double> table({3, 2});
    for (std::size_t i = 0; i < table.size(); ++i) table.data[i] = 0.5 * static_cast<double>(i);
    out.set_attr("/", "table", table);
    out.set_attr("/", "row", std::vector<double>{1.0, 2.0});
    out.set_attr("/", "count", std::int64_t{7});
    out.set_attr("/", "name", std::string("x"));
    out.commit("unit", "unit --test");
    const H5Input in = H5Input::open(path);
    const std::optional<Tensor<double>> back = in.attr_tensor("/", "table");
    REQUIRE(back.has_value());
    CHECK(back->shape == Shape{3, 2});
    CHECK(back->data == table.data);
    CHECK(std::get<std::vector<double>>(*in.attr("/", "table")) == table.data);  // flat
    CHECK(in.attr_tensor("/", "row")->shape == Shape{2});
    CHECK(in.attr_tensor("/", "count")->shape == Shape{});
    CHECK(in.attr_tensor("/", "count")->data == std::vector<double>{7.0});
    CHECK(!in.attr_tensor("/", "absent").has_value());
    CHECK_THROWS_AS(in.attr_tensor("/", "name"), Error);
}

TEST_CASE("HDF5 written by ropekit reads back exactly, whole and in slabs") {
    TempDir dir;
    const H5Input in = H5Input::open(write_sample(dir));
    const Tensor<float> x = in.read_float("x");
    CHECK(x.shape == Shape{2, 3, 4});
    CHECK(x.data == ramp({2, 3, 4}).data);
    CHECK(in.info("half").dtype == DType::f16);
    CHECK(in.info("brain").dtype == DType::bf16);
    CHECK(in.info("wide").dtype == DType::f64);
    CHECK(in.read_float("half").data == ramp({5}).data);   // multiples of 1/4 are exact in f16
    CHECK(in.read_float("brain").data == ramp({5}).data);  // and in bf16
    CHECK(in.read_double("wide").data == std::vector<double>{0.1, 0.1});
    CHECK(in.read_int64("ids").data == std::vector<std::int64_t>{7, -1, 42});

    std::vector<float> slab(2 * 2);
    in.read_slab("x", {1, 1, 2}, {1, 2, 2}, slab.data());
    CHECK(slab == std::vector<float>{x({1, 1, 2}), x({1, 1, 3}), x({1, 2, 2}), x({1, 2, 3})});

    CHECK(in.attr_double("/", "theta") == 500000.0);
    CHECK(in.attr_string("/", "layout") == "half");
    CHECK(in.attr_string("x", "units") == "widgets");
    CHECK(std::get<std::vector<std::string>>(*in.attr("x", "list")) ==
          std::vector<std::string>{"p", "q"});
    CHECK(!in.attr("/", "absent").has_value());
    CHECK(in.attr_string("/", "tool") == "unit");
    CHECK(in.attr_string("/", "command_line") == "unit --test");
    CHECK(in.history().rfind("previous step\n", 0) == 0);
    CHECK(in.has("x"));
    CHECK(!in.has("nope"));
    auto names = in.dataset_names();
    std::sort(names.begin(), names.end());
    CHECK(names == std::vector<std::string>{"brain", "half", "ids", "wide", "x"});
}

TEST_CASE("bad HDF5 inputs are one-line data errors naming the file") {
    TempDir dir;
    expect_error([&] { H5Input::open(dir.file("missing.h5")); }, ExitCode::data,
                 {"missing.h5: cannot open: No such file"});
    expect_error([&] { H5Input::open(dir.path().string()); }, ExitCode::data, {"is a directory"});
    std::ofstream(dir.file("empty.h5")).close();
    expect_error([&] { H5Input::open(dir.file("empty.h5")); }, ExitCode::data,
                 {"empty.h5: empty input, expected an HDF5 file"});
    std::ofstream(dir.file("text.h5")) << "this is not HDF5\n";
    expect_error([&] { H5Input::open(dir.file("text.h5")); }, ExitCode::data,
                 {"text.h5: not an HDF5 file"});
    const std::string good = write_sample(dir);
    fs::copy_file(good, dir.file("cut.h5"));
    fs::resize_file(dir.file("cut.h5"), fs::file_size(good) / 2);
    expect_error(
        [&] {
            const H5Input in = H5Input::open(dir.file("cut.h5"));
            for (const auto& name : in.dataset_names()) in.read_float(name);
            in.read_float("x");
        },
        ExitCode::data, {"cut.h5"});

    const H5Input in = H5Input::open(good);
    expect_error([&] { in.read_float("nope"); }, ExitCode::data,
                 {"sample.h5: nope: no such dataset"});
    expect_error([&] { in.read_float("a/b/c"); }, ExitCode::data, {"a/b/c: no such dataset"});
    expect_error([&] { in.read_float("ids"); }, ExitCode::data,
                 {"ids: expected floating-point data", "found int64"});
    expect_error([&] { in.read_int64("x"); }, ExitCode::data,
                 {"x: expected integer data, found float32"});
    std::vector<float> out(10);
    expect_error(
        [&] {
            in.read_slab("x", {0, 0, 3}, {1, 1, 2}, out.data());
        },
        ExitCode::data, {"past its length"});
}

TEST_CASE("outputs refuse to overwrite without --force and never overwrite an input") {
    TempDir dir;
    const std::string path = write_sample(dir);
    expect_error([&] { H5Output::create(path, {}); }, ExitCode::usage,
                 {"output exists; pass --force"});
    expect_error(
        [&] {
            H5Output::create(path, {true, {path}});
        },
        ExitCode::usage, {"output is also an input"});
    // The same file under another name is still the input.
    fs::create_hard_link(path, dir.file("alias.h5"));
    expect_error(
        [&] {
            H5Output::create(dir.file("alias.h5"), {true, {path}});
        },
        ExitCode::usage, {"also an input"});
    expect_error([&] { H5Output::create(dir.file("no/such/dir/out.h5"), {}); }, ExitCode::data,
                 {"output directory", "does not exist"});
    H5Output replaced = H5Output::create(path, {true, {}});
    replaced.write("y", ramp({1}));
    replaced.commit("unit", "unit");
    CHECK(H5Input::open(path).has("y"));
    CHECK(!H5Input::open(path).has("x"));
}

TEST_CASE("an output that is never committed leaves nothing behind and the old file intact") {
    TempDir dir;
    const std::string path = write_sample(dir);
    const auto before = fs::file_size(path);
    {
        H5Output out = H5Output::create(path, {true, {}});
        out.write("big", ramp({1000}));
        CHECK(dir.entries() == 2);  // sample.h5 and the temporary replacement being written
    }
    CHECK(dir.entries() == 1);  // only sample.h5
    CHECK(fs::file_size(path) == before);
    CHECK(H5Input::open(path).has("x"));
}

TEST_CASE("an HDF5 file held in memory opens like a file and leaves nothing behind") {
    TempDir dir;
    const std::string path = write_sample(dir);
    std::ifstream file(path, std::ios::binary);
    const std::string bytes((std::istreambuf_iterator<char>(file)),
                            std::istreambuf_iterator<char>());
    const H5Input in = H5Input::open_memory(bytes.data(), bytes.size(), "<fuzz>");
    CHECK(in.read_float("x").data == ramp({2, 3, 4}).data);
    CHECK(in.name() == "<fuzz>");
    expect_error([&] { H5Input::open_memory("junk", 4, "<fuzz>"); }, ExitCode::data,
                 {"<fuzz>: not an HDF5 file"});
    expect_error([&] { H5Input::open_memory(bytes.data(), bytes.size() / 3, "<fuzz>"); },
                 ExitCode::data, {"<fuzz>"});
}
