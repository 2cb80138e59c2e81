#include "ropekit/hdf5/h5_datatypes_internal.hpp"

#include <hdf5_hl.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstring>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "ropekit/core/error.hpp"
#include "ropekit/hdf5/h5io.hpp"

namespace ropekit {

Shape dataspace_shape(hid_t dataset, const std::string& file, const std::string& name) {
    Hid space(H5Dget_space(dataset), H5Sclose);
    const int rank = space ? H5Sget_simple_extent_ndims(space.get()) : -1;
    if (rank < 0) throw data_error(file, name, "cannot read the dataset's shape (corrupt file?)");
    std::vector<hsize_t> dims(static_cast<std::size_t>(rank));
    H5Sget_simple_extent_dims(space.get(), dims.data(), nullptr);
    return Shape(dims.begin(), dims.end());
}

std::string describe_type(hid_t type) {
    const std::size_t size = H5Tget_size(type);
    switch (H5Tget_class(type)) {
        case H5T_INTEGER:
            return fmt::format("{}int{}", H5Tget_sign(type) == H5T_SGN_NONE ? "u" : "", 8 * size);
        case H5T_FLOAT:
            return fmt::format("float{}", 8 * size);
        case H5T_STRING:
            return "string";
        case H5T_OPAQUE:
            return fmt::format("opaque ({} bytes)", size);
        case H5T_COMPOUND:
            return "compound";
        case H5T_ENUM:
            return "enum";
        case H5T_ARRAY:
            return "array";
        case H5T_VLEN:
            return "variable-length";
        case H5T_REFERENCE:
            return "reference";
        default:
            return "unknown type";
    }
}

namespace {

Int16AsBf16 g_int16_as_bf16 = Int16AsBf16::marked;

bool names_bfloat16(std::string text) {
    std::transform(text.begin(), text.end(), text.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return text.find("bfloat16") != std::string::npos || text.find("bf16") != std::string::npos;
}

bool tagged_bfloat16(hid_t dataset) {
    if (H5Aexists(dataset, "dtype") <= 0) return false;
    Hid a(H5Aopen(dataset, "dtype", H5P_DEFAULT), H5Aclose);
    if (!a) return false;
    const AttrValue v = read_attribute(a.get(), "", "dtype");
    const auto* s = std::get_if<std::string>(&v);
    return s && names_bfloat16(*s);
}

hid_t file_type_for(DType t) {
    switch (t) {
        case DType::f32:
            return H5T_IEEE_F32LE;
        case DType::f64:
            return H5T_IEEE_F64LE;
        case DType::bf16:
            return H5T_STD_U16LE;
        case DType::f16:
            break;
    }
    return -1;
}

Hid open_object(hid_t file, const std::string& file_name, const std::string& object) {
    Hid obj(H5Oopen(file, object.c_str(), H5P_DEFAULT), H5Oclose);
    if (!obj) throw data_error(file_name, object, "cannot open object to write an attribute");
    return obj;
}

Hid string_type(std::size_t size) {
    Hid t(H5Tcopy(H5T_C_S1), H5Tclose);
    H5Tset_size(t.get(), size);
    H5Tset_cset(t.get(), H5T_CSET_UTF8);
    return t;
}

Hid create_space(const Shape& shape) {
    if (shape.empty()) return Hid(H5Screate(H5S_SCALAR), H5Sclose);
    std::vector<hsize_t> dims(shape.begin(), shape.end());
    return Hid(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr), H5Sclose);
}

void fail_write(const std::string& file_name, const std::string& dataset) {
    throw data_error(file_name, dataset, "write failed (disk full or file too large?)");
}

Hid open_for_write(hid_t file, const std::string& file_name, const std::string& dataset) {
    Hid d(H5Dopen2(file, dataset.c_str(), H5P_DEFAULT), H5Dclose);
    if (!d) throw data_error(file_name, dataset, "no such dataset in the output");
    return d;
}

Hid create_plain(hid_t file, const std::string& file_name, const std::string& dataset,
                 const Shape& shape, hid_t type) {
    Hid lcpl(H5Pcreate(H5P_LINK_CREATE), H5Pclose);
    H5Pset_create_intermediate_group(lcpl.get(), 1);
    Hid space = create_space(shape);
    Hid d(
        H5Dcreate2(file, dataset.c_str(), type, space.get(), lcpl.get(), H5P_DEFAULT, H5P_DEFAULT),
        H5Dclose);
    if (!d)
        throw data_error(file_name, dataset, "cannot create dataset (name taken or disk full?)");
    return d;
}

}  // namespace

void read_int16_as_bf16(Int16AsBf16 policy) {
    g_int16_as_bf16 = policy;
}

bool holds_bf16_bits(hid_t dataset) {
    Hid type(H5Dget_type(dataset), H5Tclose);
    if (!type || H5Tget_class(type.get()) != H5T_INTEGER || H5Tget_size(type.get()) != 2)
        return false;
    return g_int16_as_bf16 == Int16AsBf16::all_bf16 || tagged_bfloat16(dataset);
}

Hid make_f16_type() {
    Hid t(H5Tcopy(H5T_IEEE_F32LE), H5Tclose);
    H5Tset_fields(t.get(), 15, 10, 5, 0, 10);
    H5Tset_size(t.get(), 2);
    H5Tset_ebias(t.get(), 15);
    return t;
}

DType classify_float_type(hid_t dataset, const std::string& file, const std::string& name) {
    Hid type(H5Dget_type(dataset), H5Tclose);
    if (!type) throw data_error(file, name, "cannot read the element type (corrupt file?)");
    const H5T_class_t cls = H5Tget_class(type.get());
    const std::size_t size = H5Tget_size(type.get());
    if (cls == H5T_FLOAT) {
        if (size == 4) return DType::f32;
        if (size == 8) return DType::f64;
        if (size == 2) {
            std::size_t spos = 0, epos = 0, esize = 0, mpos = 0, msize = 0;
            H5Tget_fields(type.get(), &spos, &epos, &esize, &mpos, &msize);
            const std::size_t ebias = H5Tget_ebias(type.get());
            if (epos == 10 && esize == 5 && mpos == 0 && msize == 10 && ebias == 15)
                return DType::f16;
            if (epos == 7 && esize == 8 && mpos == 0 && msize == 7 && ebias == 127)
                return DType::bf16;
        }
    } else if (cls == H5T_INTEGER && size == 2) {
        // bf16 bits as PyTorch users save them: t.view(torch.int16 or torch.uint16).numpy().
        if (holds_bf16_bits(dataset)) return DType::bf16;
        const bool option = g_int16_as_bf16 == Int16AsBf16::marked_or_option;
        throw data_error(file, name,
                         "expected floating-point data, found " + describe_type(type.get()) +
                             " (bf16 bits? mark it with attrs['dtype']='bfloat16'" +
                             (option ? " or pass --bf16)" : ")"));
    } else if (cls == H5T_OPAQUE && size == 2) {
        char* tag = H5Tget_tag(type.get());
        const bool bf16 = tag && names_bfloat16(tag);
        H5free_memory(tag);
        if (bf16) return DType::bf16;
    }
    throw data_error(
        file, name,
        "expected floating-point data (f16, bf16, f32 or f64), found " + describe_type(type.get()));
}

Hid raw16_memory_type(hid_t dataset, DType dtype) {
    Hid file_type(H5Dget_type(dataset), H5Tclose);
    // The file's own sign, so that HDF5 copies the 16 bits instead of clamping negatives.
    if (H5Tget_class(file_type.get()) == H5T_INTEGER) {
        const bool is_signed = H5Tget_sign(file_type.get()) == H5T_SGN_2;
        return Hid(H5Tcopy(is_signed ? H5T_NATIVE_INT16 : H5T_NATIVE_UINT16), H5Tclose);
    }
    Hid t(H5Tcopy(file_type.get()), H5Tclose);
    if (H5Tget_class(t.get()) == H5T_FLOAT) H5Tset_order(t.get(), H5T_ORDER_LE);
    (void)dtype;
    return t;
}

AttrValue read_attribute(hid_t attribute, const std::string& file, const std::string& where) {
    Hid type(H5Aget_type(attribute), H5Tclose);
    Hid space(H5Aget_space(attribute), H5Sclose);
    const hssize_t points = H5Sget_simple_extent_npoints(space.get());
    const int rank = H5Sget_simple_extent_ndims(space.get());
    if (!type || points < 0 || rank < 0) throw data_error(file, where, "unreadable attribute");
    const auto n = static_cast<std::size_t>(points);
    const bool scalar = rank == 0;
    switch (H5Tget_class(type.get())) {
        case H5T_STRING: {
            std::vector<std::string> values;
            if (H5Tis_variable_str(type.get()) > 0) {
                Hid mem(H5Tcopy(H5T_C_S1), H5Tclose);
                H5Tset_size(mem.get(), H5T_VARIABLE);
                H5Tset_cset(mem.get(), H5Tget_cset(type.get()));
                std::vector<char*> ptrs(n, nullptr);
                if (H5Aread(attribute, mem.get(), ptrs.data()) < 0) {
                    throw data_error(file, where, "unreadable string attribute");
                }
                for (char* p : ptrs) values.emplace_back(p ? p : "");
                H5Dvlen_reclaim(mem.get(), space.get(), H5P_DEFAULT, ptrs.data());
            } else {
                const std::size_t width = H5Tget_size(type.get());
                Hid mem = string_type(width);
                H5Tset_cset(mem.get(), H5Tget_cset(type.get()));
                H5Tset_strpad(mem.get(), H5Tget_strpad(type.get()));
                std::vector<char> buffer(n * width + 1, '\0');
                if (H5Aread(attribute, mem.get(), buffer.data()) < 0) {
                    throw data_error(file, where, "unreadable string attribute");
                }
                for (std::size_t i = 0; i < n; ++i) {
                    const char* s = buffer.data() + i * width;
                    values.emplace_back(s, strnlen(s, width));
                }
            }
            if (scalar) return values.empty() ? std::string() : values.front();
            return values;
        }
        case H5T_FLOAT: {
            std::vector<double> values(n);
            if (n && H5Aread(attribute, H5T_NATIVE_DOUBLE, values.data()) < 0) {
                throw data_error(file, where, "unreadable numeric attribute");
            }
            if (scalar) return values.front();
            return values;
        }
        case H5T_INTEGER: {
            std::vector<std::int64_t> values(n);
            if (n && H5Aread(attribute, H5T_NATIVE_INT64, values.data()) < 0) {
                throw data_error(file, where, "unreadable integer attribute");
            }
            if (scalar) return values.front();
            return values;
        }
        default:
            throw data_error(file, where,
                             "unsupported attribute type " + describe_type(type.get()));
    }
}

void write_attribute(hid_t file, const std::string& file_name, const std::string& object,
                     const std::string& name, const AttrValue& value, const Shape& shape) {
    Hid obj = open_object(file, file_name, object);
    if (H5Aexists(obj.get(), name.c_str()) > 0) H5Adelete(obj.get(), name.c_str());
    const std::string where = object + "@" + name;
    auto put = [&](hid_t file_type, const Shape& length, hid_t mem_type, const void* data) {
        Hid space = create_space(length.empty() || shape.empty() ? length : shape);
        Hid a(H5Acreate2(obj.get(), name.c_str(), file_type, space.get(), H5P_DEFAULT, H5P_DEFAULT),
              H5Aclose);
        if (!a || H5Awrite(a.get(), mem_type, data) < 0) {
            throw data_error(file_name, where, "cannot write attribute");
        }
    };
    Hid vlen = string_type(H5T_VARIABLE);
    std::visit(
        [&](const auto& v) {
            using V = std::decay_t<decltype(v)>;
            if constexpr (std::is_same_v<V, std::string>) {
                const char* p = v.c_str();
                put(vlen.get(), {}, vlen.get(), &p);
            } else if constexpr (std::is_same_v<V, double>) {
                put(H5T_IEEE_F64LE, {}, H5T_NATIVE_DOUBLE, &v);
            } else if constexpr (std::is_same_v<V, std::int64_t>) {
                put(H5T_STD_I64LE, {}, H5T_NATIVE_INT64, &v);
            } else if constexpr (std::is_same_v<V, std::vector<double>>) {
                put(H5T_IEEE_F64LE, {v.size()}, H5T_NATIVE_DOUBLE, v.data());
            } else if constexpr (std::is_same_v<V, std::vector<std::int64_t>>) {
                put(H5T_STD_I64LE, {v.size()}, H5T_NATIVE_INT64, v.data());
            } else {
                std::vector<const char*> ptrs;
                for (const auto& s : v) ptrs.push_back(s.c_str());
                put(vlen.get(), {v.size()}, vlen.get(), ptrs.data());
            }
        },
        value);
}

void create_output_dataset(hid_t file, const std::string& file_name, const std::string& dataset,
                           const Shape& shape, DType stored) {
    // Contiguous, unfiltered: every shape we write is known up front, and readers (ours in place,
    // numpy.memmap over h5py's offset) can map a contiguous dataset's bytes instead of copying
    // them through HDF5. Chunks bought nothing here (no compression, no growing axis).
    Hid f16;
    hid_t type = file_type_for(stored);
    if (stored == DType::f16) {
        f16 = make_f16_type();
        type = f16.get();
    }
    Hid d = create_plain(file, file_name, dataset, shape, type);
    if (stored == DType::bf16)
        write_attribute(file, file_name, dataset, "dtype", std::string("bfloat16"));
}

namespace {

// A finite value that became infinite when narrowed to the stored 16-bit type is an error naming
// where it was: outputs hold no silent inf (masked scores' -inf stays -inf).
void check_narrowed(const float* data, const std::uint16_t* raw, std::size_t n, DType stored,
                    const std::string& file_name, const std::string& dataset, const Shape& start,
                    const Shape& count) {
    const std::uint16_t inf_bits = stored == DType::f16 ? 0x7c00 : 0x7f80;
    for (std::size_t i = 0; i < n; ++i) {
        if ((raw[i] & 0x7fff) != inf_bits || !std::isfinite(data[i])) continue;
        std::vector<std::size_t> at(count.size());
        for (std::size_t a = count.size(), rest = i; a-- > 0; rest /= count[a]) {
            at[a] = start[a] + rest % count[a];
        }
        throw data_error(
            file_name, dataset,
            fmt::format("value {:.7g} at [{}] does not fit {} (largest {})", data[i],
                        fmt::join(at, ", "), stored == DType::f16 ? "float16" : "bfloat16",
                        stored == DType::f16 ? "65504" : "3.3895e38"));
    }
}

}  // namespace

void write_float_slab(hid_t file, const std::string& file_name, const std::string& dataset,
                      const Shape& start, const Shape& count, const float* data) {
    Hid d = open_for_write(file, file_name, dataset);
    const std::size_t n = element_count(count);
    if (n == 0) return;
    const DType stored = classify_float_type(d.get(), file_name, dataset);
    Hid file_space(H5Dget_space(d.get()), H5Sclose);
    std::vector<hsize_t> h_start(start.begin(), start.end()), h_count(count.begin(), count.end());
    if (!count.empty()) {
        H5Sselect_hyperslab(file_space.get(), H5S_SELECT_SET, h_start.data(), nullptr,
                            h_count.data(), nullptr);
    }
    Hid mem_space = create_space(count);
    herr_t status;
    if (stored == DType::f32 || stored == DType::f64) {
        status = H5Dwrite(d.get(), H5T_NATIVE_FLOAT, mem_space.get(), file_space.get(), H5P_DEFAULT,
                          data);
    } else {
        std::vector<std::uint16_t> raw(n);
        if (stored == DType::f16) {
            floats_to_halves(data, raw.data(), n);
        } else {
            for (std::size_t i = 0; i < n; ++i) raw[i] = float_to_bf16(data[i]);
        }
        check_narrowed(data, raw.data(), n, stored, file_name, dataset, start, count);
        Hid mem_type = raw16_memory_type(d.get(), stored);
        status = H5Dwrite(d.get(), mem_type.get(), mem_space.get(), file_space.get(), H5P_DEFAULT,
                          raw.data());
    }
    if (status < 0) fail_write(file_name, dataset);
}

void write_whole(hid_t file, const std::string& file_name, const std::string& dataset,
                 const Shape& shape, DType stored, const float* data) {
    create_output_dataset(file, file_name, dataset, shape, stored);
    write_float_slab(file, file_name, dataset, Shape(shape.size(), 0), shape, data);
}

void write_whole(hid_t file, const std::string& file_name, const std::string& dataset,
                 const Shape& shape, DType stored, const double* data) {
    create_output_dataset(file, file_name, dataset, shape, stored);
    Hid d = open_for_write(file, file_name, dataset);
    if (element_count(shape) > 0 &&
        H5Dwrite(d.get(), H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0) {
        fail_write(file_name, dataset);
    }
}

void write_int64(hid_t file, const std::string& file_name, const std::string& dataset,
                 const Shape& shape, const std::int64_t* data) {
    Hid d = create_plain(file, file_name, dataset, shape, H5T_STD_I64LE);
    if (element_count(shape) > 0 &&
        H5Dwrite(d.get(), H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0) {
        fail_write(file_name, dataset);
    }
}

void label_dataset(hid_t file, const std::string& file_name, const std::string& dataset,
                   const std::vector<std::string>& axes, const std::string& units) {
    if (!axes.empty()) {
        Hid d = open_for_write(file, file_name, dataset);
        const Shape shape = dataspace_shape(d.get(), file_name, dataset);
        if (axes.size() != shape.size()) {
            throw data_error(
                file_name, dataset,
                fmt::format("{} axis names for a rank-{} dataset", axes.size(), shape.size()));
        }
        for (std::size_t i = 0; i < axes.size(); ++i) {
            H5DSset_label(d.get(), static_cast<unsigned>(i), axes[i].c_str());
        }
    }
    if (!units.empty()) write_attribute(file, file_name, dataset, "units", units);
}

}  // namespace ropekit
