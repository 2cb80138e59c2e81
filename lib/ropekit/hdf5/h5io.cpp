#include "ropekit/hdf5/h5io.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <hdf5.h>
#include <hdf5_hl.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <ctime>

#include <fmt/format.h>

#include "ropekit/core/error.hpp"
#include "ropekit/core/interrupt.hpp"
#include "ropekit/core/output_path.hpp"
#include "ropekit/core/version.hpp"
#include "ropekit/hdf5/h5_containment_internal.hpp"
#include "ropekit/hdf5/h5_datatypes_internal.hpp"
#include "ropekit/hdf5/h5_probe_internal.hpp"

namespace ropekit {

void silence_hdf5_errors() {
    static const bool done = [] {
        // HDF5 1.10's exit handler crashes (H5F__close_cb) on a file whose close already failed,
        // e.g. after the disk filled up. Every file we open is closed explicitly, so skip it.
        H5dont_atexit();
        H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
        return true;
    }();
    (void)done;
}

namespace {

std::string errno_text() {
    return std::strerror(errno);
}

// Every path component must exist before H5Lexists may be asked about the next one.
bool object_exists(hid_t file, const std::string& path) {
    if (path.empty() || path == "/") return true;
    std::size_t pos = path[0] == '/' ? 1 : 0;
    while (true) {
        const std::size_t slash = path.find('/', pos);
        const std::string prefix = path.substr(0, slash);
        if (H5Lexists(file, prefix.c_str(), H5P_DEFAULT) <= 0) return false;
        if (slash == std::string::npos) break;
        pos = slash + 1;
    }
    return H5Oexists_by_name(file, path.c_str(), H5P_DEFAULT) > 0;
}

// Stdin as a file HDF5 can open by path. A regular file is reopened through /proc/self/fd/0.
// A pipe is spooled to a temporary file in $TMPDIR (default /tmp), which is unlinked as soon as
// HDF5 has opened it: HDF5 1.10 resolves paths with realpath(), so an anonymous memfd cannot be
// opened, and its file-image API leaks. Spooling also keeps a huge piped dump out of RAM.
class SpooledInput {
  public:
    SpooledInput() {
        struct stat st {};
        if (fstat(STDIN_FILENO, &st) == 0 && S_ISREG(st.st_mode) &&
            lseek(STDIN_FILENO, 0, SEEK_CUR) == 0) {
            path_ = "/proc/self/fd/0";
            return;
        }
#ifdef F_SETPIPE_SZ
        fcntl(STDIN_FILENO, F_SETPIPE_SZ, 1 << 20);
#endif
        create("<stdin>");
        std::vector<char> block(1 << 20);
        for (;;) {
            const ssize_t got = ::read(STDIN_FILENO, block.data(), block.size());
            if (got == 0) break;
            if (got < 0) {
                if (errno == EINTR) continue;
                throw data_error("<stdin>", "", "cannot read: " + errno_text());
            }
            write_fully(block.data(), static_cast<std::size_t>(got), "<stdin>");
        }
    }
    // The same for bytes already in memory (fuzzers, tests).
    SpooledInput(const void* data, std::size_t size, const std::string& name) {
        create(name);
        write_fully(static_cast<const char*>(data), size, name);
    }
    SpooledInput(const SpooledInput&) = delete;
    SpooledInput& operator=(const SpooledInput&) = delete;
    ~SpooledInput() {
        forget_name();
        if (fd_ >= 0) ::close(fd_);
    }
    const std::string& path() const {
        return path_;
    }
    // Once HDF5 holds the file open, its name is no longer needed.
    void forget_name() {
        if (fd_ >= 0 && !path_.empty()) {
            ::unlink(path_.c_str());
            unregister_temporary(path_);
        }
        path_.clear();
    }

  private:
    void create(const std::string& name) {
        const char* dir = std::getenv("TMPDIR");
        std::string tmpl = std::string(dir && *dir ? dir : "/tmp") + "/ropekit-input-XXXXXX";
        const InterruptsHeld held;  // an interrupted spool removes its copy
        fd_ = ::mkstemp(tmpl.data());
        if (fd_ < 0) {
            throw data_error(name, "",
                             "cannot spool the input to a temporary file: " + errno_text());
        }
        register_temporary(tmpl);
        path_ = tmpl;
    }
    void write_fully(const char* data, std::size_t size, const std::string& name) {
        while (size > 0) {
            const ssize_t put = ::write(fd_, data, size);
            if (put < 0) {
                if (errno == EINTR) continue;
                throw data_error(name, "",
                                 "cannot spool the input to a temporary file: " + errno_text());
            }
            data += put;
            size -= static_cast<std::size_t>(put);
        }
    }
    int fd_ = -1;
    std::string path_;
};

}  // namespace

// ---------------------------------------------------------------------------------------------
// H5Input

struct H5Input::Impl {
    std::string path, name;
    std::unique_ptr<SpooledInput> spooled;  // stdin or bytes from memory
    hid_t file = -1;
    ~Impl() {
        if (file >= 0) H5Fclose(file);
    }

    Hid open_dataset(const std::string& dataset) const {
        if (!object_exists(file, dataset)) {
            throw data_error(name, dataset, "no such dataset");
        }
        Hid d(H5Dopen2(file, dataset.c_str(), H5P_DEFAULT), H5Dclose);
        if (!d) throw data_error(name, dataset, "not a dataset (a group?)");
        return d;
    }
};

H5Input::H5Input(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
H5Input::H5Input(H5Input&&) noexcept = default;
H5Input& H5Input::operator=(H5Input&&) noexcept = default;
H5Input::~H5Input() = default;

namespace {

// Opens `file` read-only; messages name the input as the user gave it (`name`).
hid_t open_readonly(const std::string& file, const std::string& name) {
    struct stat st {};
    if (::stat(file.c_str(), &st) != 0) throw data_error(name, "", "cannot open: " + errno_text());
    if (S_ISDIR(st.st_mode)) throw data_error(name, "", "is a directory, expected an HDF5 file");
    if (st.st_size == 0) throw data_error(name, "", "empty input, expected an HDF5 file");
    probe_in_child(file, name);  // a file that crashes or hangs libhdf5 stops here
    if (H5Fis_hdf5(file.c_str()) <= 0) throw data_error(name, "", "not an HDF5 file");
    const hid_t id = H5Fopen(file.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
    if (id < 0) throw data_error(name, "", "cannot open as HDF5 (truncated or corrupt)");
    if (!external_hdf5_allowed()) {
        try {
            check_self_contained(id, name);
        } catch (...) {
            H5Fclose(id);
            throw;
        }
    }
    return id;
}

}  // namespace

H5Input H5Input::open(const std::string& path) {
    silence_hdf5_errors();
    auto impl = std::make_unique<Impl>();
    impl->path = path;
    impl->name = path == "-" ? "<stdin>" : path;
    if (path == "-") impl->spooled = std::make_unique<SpooledInput>();
    impl->file = open_readonly(impl->spooled ? impl->spooled->path() : path, impl->name);
    if (impl->spooled) impl->spooled->forget_name();
    return H5Input(std::move(impl));
}

H5Input H5Input::open_memory(const void* data, std::size_t size, const std::string& name) {
    silence_hdf5_errors();
    auto impl = std::make_unique<Impl>();
    impl->path = impl->name = name;
    impl->spooled = std::make_unique<SpooledInput>(data, size, name);
    impl->file = open_readonly(impl->spooled->path(), name);
    impl->spooled->forget_name();
    return H5Input(std::move(impl));
}

const std::string& H5Input::path() const {
    return impl_->path;
}
const std::string& H5Input::name() const {
    return impl_->name;
}

bool H5Input::has(const std::string& dataset) const {
    if (!object_exists(impl_->file, dataset)) return false;
    H5O_type_t type = H5O_TYPE_UNKNOWN;
    Hid obj(H5Oopen(impl_->file, dataset.c_str(), H5P_DEFAULT), H5Oclose);
    if (!obj) return false;
    type = H5Iget_type(obj.get()) == H5I_DATASET ? H5O_TYPE_DATASET : H5O_TYPE_GROUP;
    return type == H5O_TYPE_DATASET;
}

std::vector<std::string> H5Input::dataset_names() const {
    std::vector<std::string> names;
    auto visit = [](hid_t group, const char* name, const H5L_info_t* info, void* data) -> herr_t {
        const bool followed = info->type == H5L_TYPE_HARD ||
                              (info->type == H5L_TYPE_EXTERNAL && external_hdf5_allowed());
        if (!followed) return 0;
        Hid obj(H5Oopen(group, name, H5P_DEFAULT), H5Oclose);
        if (obj && H5Iget_type(obj.get()) == H5I_DATASET) {
            static_cast<std::vector<std::string>*>(data)->emplace_back(name);
        }
        return 0;
    };
    if (H5Lvisit(impl_->file, H5_INDEX_NAME, H5_ITER_INC, visit, &names) < 0) {
        throw data_error(impl_->name, "", "cannot list datasets (corrupt file?)");
    }
    return names;
}

DatasetInfo H5Input::info(const std::string& dataset) const {
    Hid d = impl_->open_dataset(dataset);
    DatasetInfo out;
    out.shape = dataspace_shape(d.get(), impl_->name, dataset);
    out.dtype = classify_float_type(d.get(), impl_->name, dataset);
    return out;
}

namespace {

// IEEE little-endian binary32 or h5py's binary16 layout, little-endian.
std::optional<DType> little_endian_ieee(hid_t dataset, DType dtype) {
    Hid type(H5Dget_type(dataset), H5Tclose);
    if (!type || H5Tget_order(type.get()) != H5T_ORDER_LE) return std::nullopt;
    if (dtype == DType::f32 && H5Tequal(type.get(), H5T_IEEE_F32LE) > 0) return dtype;
    if (dtype == DType::f16 && H5Tget_class(type.get()) == H5T_FLOAT) return dtype;
    return std::nullopt;
}

bool plain_contiguous_layout(hid_t dataset) {
    Hid dcpl(H5Dget_create_plist(dataset), H5Pclose);
    return dcpl && H5Pget_layout(dcpl.get()) == H5D_CONTIGUOUS &&
           H5Pget_nfilters(dcpl.get()) == 0 && H5Pget_external_count(dcpl.get()) == 0;
}

}  // namespace

namespace {

// True if `object` is stored in the same file as `file`: not reached through an external link
// (which --allow-external lets a dump contain), whose bytes sit in another file.
bool in_file(hid_t object, hid_t file) {
    H5O_info_t a{}, b{};
    return H5Oget_info2(object, &a, H5O_INFO_BASIC) >= 0 &&
           H5Oget_info2(file, &b, H5O_INFO_BASIC) >= 0 && a.fileno == b.fileno;
}

}  // namespace

std::optional<ContiguousStorage> H5Input::contiguous_storage(const std::string& dataset) const {
    if (impl_->spooled || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__) return std::nullopt;
    Hid d = impl_->open_dataset(dataset);
    const DatasetInfo info{dataspace_shape(d.get(), impl_->name, dataset),
                           classify_float_type(d.get(), impl_->name, dataset)};
    const std::optional<DType> dtype = little_endian_ieee(d.get(), info.dtype);
    if (!dtype || !plain_contiguous_layout(d.get()) || !in_file(d.get(), impl_->file)) {
        return std::nullopt;
    }
    std::uint64_t elements = 1;
    for (std::size_t n : info.shape) elements *= n;
    const std::uint64_t bytes = elements * (*dtype == DType::f32 ? 4 : 2);
    const haddr_t offset = H5Dget_offset(d.get());
    struct stat st {};
    if (offset == HADDR_UNDEF || H5Dget_storage_size(d.get()) != bytes ||
        ::stat(impl_->path.c_str(), &st) != 0 || !S_ISREG(st.st_mode) ||
        offset + bytes > static_cast<std::uint64_t>(st.st_size) || offset + bytes < offset) {
        return std::nullopt;
    }
    return ContiguousStorage{offset, bytes, *dtype};
}

std::vector<std::string> H5Input::axes(const std::string& dataset) const {
    Hid d = impl_->open_dataset(dataset);
    const Shape shape = dataspace_shape(d.get(), impl_->name, dataset);
    std::vector<std::string> labels(shape.size());
    for (std::size_t i = 0; i < shape.size(); ++i) {
        char buffer[256] = {0};
        ssize_t n = H5DSget_label(d.get(), static_cast<unsigned>(i), buffer, sizeof buffer);
        if (n > 0)
            labels[i] = std::string(
                buffer, std::min<std::size_t>(static_cast<std::size_t>(n), sizeof buffer - 1));
    }
    return labels;
}

bool H5Input::is_integer(const std::string& dataset) const {
    Hid d = impl_->open_dataset(dataset);
    Hid type(H5Dget_type(d.get()), H5Tclose);
    return H5Tget_class(type.get()) == H5T_INTEGER && !holds_bf16_bits(d.get());
}

namespace {

template <class T>
void read_slab_impl(const H5Input::Impl& in, const std::string& dataset, const Shape& start,
                    const Shape& count, T* out) {
    Hid d = in.open_dataset(dataset);
    const Shape shape = dataspace_shape(d.get(), in.name, dataset);
    const DType dtype = classify_float_type(d.get(), in.name, dataset);
    if (start.size() != shape.size() || count.size() != shape.size()) {
        throw data_error(
            in.name, dataset,
            fmt::format("expected rank {}, got a slab of rank {}", shape.size(), start.size()));
    }
    for (std::size_t a = 0; a < shape.size(); ++a) {
        if (start[a] + count[a] > shape[a]) {
            throw data_error(in.name, dataset,
                             fmt::format("slab {}+{} on axis {} is past its length {}", start[a],
                                         count[a], a, shape[a]));
        }
    }
    const std::size_t n = element_count(count);
    if (n == 0) return;
    Hid file_space(H5Dget_space(d.get()), H5Sclose);
    std::vector<hsize_t> h_start(start.begin(), start.end()), h_count(count.begin(), count.end());
    if (!shape.empty()) {
        H5Sselect_hyperslab(file_space.get(), H5S_SELECT_SET, h_start.data(), nullptr,
                            h_count.data(), nullptr);
    }
    Hid mem_space(shape.empty()
                      ? H5Screate(H5S_SCALAR)
                      : H5Screate_simple(static_cast<int>(h_count.size()), h_count.data(), nullptr),
                  H5Sclose);
    auto check = [&](herr_t status) {
        if (status < 0)
            throw data_error(in.name, dataset, "read failed (truncated or corrupt file?)");
    };
    if (dtype == DType::f32 || dtype == DType::f64) {
        check(H5Dread(d.get(), native_type<T>(), mem_space.get(), file_space.get(), H5P_DEFAULT,
                      out));
        return;
    }
    std::vector<std::uint16_t> raw(n);
    Hid raw_type = raw16_memory_type(d.get(), dtype);
    check(H5Dread(d.get(), raw_type.get(), mem_space.get(), file_space.get(), H5P_DEFAULT,
                  raw.data()));
    if constexpr (std::is_same_v<T, float>) {
        if (dtype == DType::f16) {
            halves_to_floats(raw.data(), out, n);
        } else {
            bf16s_to_floats(raw.data(), out, n);
        }
    } else {
        for (std::size_t i = 0; i < n; ++i) {
            out[i] = dtype == DType::f16 ? half_to_float(raw[i]) : bf16_to_float(raw[i]);
        }
    }
}

template <class T>
Tensor<T> read_whole(const H5Input& in, const std::string& dataset) {
    Tensor<T> t(in.info(dataset).shape);
    in.read_slab(dataset, Shape(t.rank(), 0), t.shape, t.ptr());
    return t;
}

}  // namespace

void H5Input::read_slab(const std::string& dataset, const Shape& start, const Shape& count,
                        float* out) const {
    read_slab_impl(*impl_, dataset, start, count, out);
}
void H5Input::read_slab(const std::string& dataset, const Shape& start, const Shape& count,
                        double* out) const {
    read_slab_impl(*impl_, dataset, start, count, out);
}
Tensor<float> H5Input::read_float(const std::string& dataset) const {
    return read_whole<float>(*this, dataset);
}
Tensor<double> H5Input::read_double(const std::string& dataset) const {
    return read_whole<double>(*this, dataset);
}

Tensor<std::int64_t> H5Input::read_int64(const std::string& dataset) const {
    Hid d = impl_->open_dataset(dataset);
    Hid type(H5Dget_type(d.get()), H5Tclose);
    if (H5Tget_class(type.get()) != H5T_INTEGER) {
        throw data_error(impl_->name, dataset,
                         "expected integer data, found " + describe_type(type.get()));
    }
    Tensor<std::int64_t> t(dataspace_shape(d.get(), impl_->name, dataset));
    if (t.size() > 0 &&
        H5Dread(d.get(), H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, t.ptr()) < 0) {
        throw data_error(impl_->name, dataset, "read failed (truncated or corrupt file?)");
    }
    return t;
}

std::optional<AttrValue> H5Input::attr(const std::string& object, const std::string& name) const {
    if (!object_exists(impl_->file, object)) return std::nullopt;
    if (H5Aexists_by_name(impl_->file, object.c_str(), name.c_str(), H5P_DEFAULT) <= 0) {
        return std::nullopt;
    }
    Hid a(H5Aopen_by_name(impl_->file, object.c_str(), name.c_str(), H5P_DEFAULT, H5P_DEFAULT),
          H5Aclose);
    if (!a) return std::nullopt;
    return read_attribute(a.get(), impl_->name, object + "@" + name);
}

std::optional<std::string> H5Input::attr_string(const std::string& object,
                                                const std::string& name) const {
    auto v = attr(object, name);
    if (!v) return std::nullopt;
    if (auto* s = std::get_if<std::string>(&*v)) return *s;
    throw data_error(impl_->name, object + "@" + name, "expected a string attribute");
}

std::optional<double> H5Input::attr_double(const std::string& object,
                                           const std::string& name) const {
    auto v = attr(object, name);
    if (!v) return std::nullopt;
    if (auto* d = std::get_if<double>(&*v)) return *d;
    if (auto* i = std::get_if<std::int64_t>(&*v)) return static_cast<double>(*i);
    throw data_error(impl_->name, object + "@" + name, "expected a numeric attribute");
}

std::optional<Tensor<double>> H5Input::attr_tensor(const std::string& object,
                                                   const std::string& name) const {
    const std::optional<AttrValue> v = attr(object, name);
    if (!v) return std::nullopt;
    Tensor<double> t;
    if (const auto* d = std::get_if<std::vector<double>>(&*v)) t.data = *d;
    if (const auto* i = std::get_if<std::vector<std::int64_t>>(&*v)) {
        t.data.assign(i->begin(), i->end());
    }
    if (const auto* d = std::get_if<double>(&*v)) t.data = {*d};
    if (const auto* i = std::get_if<std::int64_t>(&*v)) t.data = {static_cast<double>(*i)};
    if (std::holds_alternative<std::string>(*v) ||
        std::holds_alternative<std::vector<std::string>>(*v)) {
        throw data_error(impl_->name, object + "@" + name, "expected a numeric attribute");
    }
    Hid a(H5Aopen_by_name(impl_->file, object.c_str(), name.c_str(), H5P_DEFAULT, H5P_DEFAULT),
          H5Aclose);
    Hid space(H5Aget_space(a.get()), H5Sclose);
    const int rank = H5Sget_simple_extent_ndims(space.get());
    std::vector<hsize_t> dims(static_cast<std::size_t>(std::max(rank, 0)));
    H5Sget_simple_extent_dims(space.get(), dims.data(), nullptr);
    t.shape.assign(dims.begin(), dims.end());
    return t;
}

std::vector<std::string> H5Input::attr_names(const std::string& object) const {
    std::vector<std::string> names;
    if (!object_exists(impl_->file, object)) return names;
    Hid obj(H5Oopen(impl_->file, object.c_str(), H5P_DEFAULT), H5Oclose);
    if (!obj) return names;
    auto visit = [](hid_t, const char* name, const H5A_info_t*, void* data) -> herr_t {
        static_cast<std::vector<std::string>*>(data)->emplace_back(name);
        return 0;
    };
    hsize_t index = 0;
    H5Aiterate2(obj.get(), H5_INDEX_NAME, H5_ITER_INC, &index, visit, &names);
    return names;
}

std::string H5Input::history() const {
    return attr_string("/", "history").value_or("");
}

// ---------------------------------------------------------------------------------------------
// H5Output

struct H5Output::Impl {
    std::string path, name;
    std::unique_ptr<TempOutput> temp;  // removed on destruction unless committed
    bool to_stdout = false;
    hid_t file = -1;

    ~Impl() {
        if (file >= 0) H5Fclose(file);
    }
};

H5Output::H5Output(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
H5Output::H5Output(H5Output&&) noexcept = default;
H5Output& H5Output::operator=(H5Output&&) noexcept = default;
H5Output::~H5Output() = default;

const std::string& H5Output::name() const {
    return impl_->name;
}

H5Output H5Output::create(const std::string& path, const WriteOptions& options) {
    silence_hdf5_errors();
    auto impl = std::make_unique<Impl>();
    impl->path = path;
    impl->name = path == "-" ? "<stdout>" : path;
    Hid fapl(H5Pcreate(H5P_FILE_ACCESS), H5Pclose);
    H5Pset_fclose_degree(fapl.get(), H5F_CLOSE_STRONG);
    if (path == "-") {
        static std::atomic<unsigned> counter{0};
        impl->to_stdout = true;
        H5Pset_fapl_core(fapl.get(), 4 << 20, 0);
        const std::string core_name = fmt::format("ropekit-stdout-{}-{}", ::getpid(), counter++);
        impl->file = H5Fcreate(core_name.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, fapl.get());
        if (impl->file < 0)
            throw data_error(impl->name, "", "cannot create an in-memory HDF5 file");
        return H5Output(std::move(impl));
    }
    check_output_path(path, options.force, options.inputs);
    impl->temp = std::make_unique<TempOutput>(make_temp_beside(path));
    // The name is reserved; HDF5 creates the file anew (EXCL) rather than truncating the empty
    // one, because ext4 flushes a truncated file's data when it is closed (open_for_writing).
    ::unlink(impl->temp->path().c_str());
    impl->file = H5Fcreate(impl->temp->path().c_str(), H5F_ACC_EXCL, H5P_DEFAULT, fapl.get());
    if (impl->file < 0) throw data_error(path, "", "cannot create the output file");
    return H5Output(std::move(impl));
}

void H5Output::create_dataset(const std::string& dataset, const Shape& shape, DType stored,
                              const std::vector<std::string>& axes, const std::string& units) {
    create_output_dataset(impl_->file, impl_->name, dataset, shape, stored);
    label_dataset(impl_->file, impl_->name, dataset, axes, units);
}

void H5Output::write_slab(const std::string& dataset, const Shape& start, const Shape& count,
                          const float* data) {
    write_float_slab(impl_->file, impl_->name, dataset, start, count, data);
}

void H5Output::write(const std::string& dataset, const Tensor<float>& t,
                     const std::vector<std::string>& axes, const std::string& units, DType stored) {
    write_whole(impl_->file, impl_->name, dataset, t.shape, stored, t.ptr());
    label_dataset(impl_->file, impl_->name, dataset, axes, units);
}

void H5Output::write(const std::string& dataset, const Tensor<double>& t,
                     const std::vector<std::string>& axes, const std::string& units) {
    write_whole(impl_->file, impl_->name, dataset, t.shape, DType::f64, t.ptr());
    label_dataset(impl_->file, impl_->name, dataset, axes, units);
}

void H5Output::write(const std::string& dataset, const Tensor<std::int64_t>& t,
                     const std::vector<std::string>& axes, const std::string& units) {
    write_int64(impl_->file, impl_->name, dataset, t.shape, t.ptr());
    label_dataset(impl_->file, impl_->name, dataset, axes, units);
}

void H5Output::set_attr(const std::string& object, const std::string& name,
                        const AttrValue& value) {
    write_attribute(impl_->file, impl_->name, object, name, value);
}

void H5Output::set_attr(const std::string& object, const std::string& name,
                        const Tensor<double>& value) {
    write_attribute(impl_->file, impl_->name, object, name, value.data, value.shape);
}

namespace {

std::string utc_timestamp() {
    std::time_t now = std::time(nullptr);
    std::tm tm{};
    gmtime_r(&now, &tm);
    std::array<char, 32> buf{};
    std::strftime(buf.data(), buf.size(), "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf.data();
}

void write_all(int fd, const char* data, std::size_t size, const std::string& name) {
    while (size > 0) {
        const ssize_t put = ::write(fd, data, size);
        if (put < 0) {
            if (errno == EINTR) continue;
            throw data_error(name, "", "write failed: " + errno_text());
        }
        data += put;
        size -= static_cast<std::size_t>(put);
    }
}

}  // namespace

void H5Output::commit(const std::string& tool, const std::string& command_line,
                      const std::string& history) {
    OutputBatch batch;
    finish_into(batch, tool, command_line, history);
    batch.commit();
}

void H5Output::finish_into(OutputBatch& batch, const std::string& tool,
                           const std::string& command_line, const std::string& history) {
    const std::string entry =
        fmt::format("{} ropekit {}: {}", utc_timestamp(), kVersion, command_line);
    set_attr("/", "ropekit_version", std::string(kVersion));
    set_attr("/", "tool", tool);
    set_attr("/", "command_line", command_line);
    set_attr("/", "history", history.empty() ? entry : history + "\n" + entry);
    if (impl_->to_stdout) {
        if (H5Fflush(impl_->file, H5F_SCOPE_GLOBAL) < 0) {
            throw data_error(impl_->name, "", "cannot finish the in-memory file");
        }
        const ssize_t size = H5Fget_file_image(impl_->file, nullptr, 0);
        if (size < 0) throw data_error(impl_->name, "", "cannot build the file image");
        std::vector<char> image(static_cast<std::size_t>(size));
        H5Fget_file_image(impl_->file, image.data(), image.size());
        H5Fclose(impl_->file);
        impl_->file = -1;
#ifdef F_SETPIPE_SZ
        fcntl(STDOUT_FILENO, F_SETPIPE_SZ, 1 << 20);
#endif
        std::fflush(stdout);
        write_all(STDOUT_FILENO, image.data(), image.size(), impl_->name);
        return;
    }
    const herr_t closed = H5Fclose(impl_->file);
    impl_->file = -1;
    if (closed < 0) throw data_error(impl_->name, "", "cannot finish writing (disk full?)");
    batch.add(std::move(impl_->temp), impl_->path);
}

}  // namespace ropekit
