#include <H5PLpublic.h>

#include <optional>
#include <vector>

#include <fmt/format.h>

#include "ropekit/core/error.hpp"
#include "ropekit/hdf5/h5_containment_internal.hpp"
#include "ropekit/hdf5/h5_datatypes_internal.hpp"
#include "ropekit/hdf5/h5io.hpp"

namespace ropekit {

namespace {

bool g_allow_external = false;

// Names from a hostile file go into a one-line message: no control characters, bounded length.
std::string printable(const std::string& text) {
    std::string out;
    for (char c : text.substr(0, 200)) {
        out += static_cast<unsigned char>(c) < 0x20 || c == 0x7f ? '?' : c;
    }
    return text.size() > 200 ? out + "..." : out;
}

std::string refusal(const std::string& what, const std::string& verb) {
    return fmt::format("{}; refused (--allow-external {})", what, verb);
}

std::string external_link_target(hid_t group, const char* name, const H5L_info_t& info) {
    std::vector<char> value(info.u.val_size + 1, '\0');
    const char* file = nullptr;
    const char* object = nullptr;
    unsigned flags = 0;
    if (H5Lget_val(group, name, value.data(), info.u.val_size, H5P_DEFAULT) < 0 ||
        H5Lunpack_elink_val(value.data(), info.u.val_size, &flags, &file, &object) < 0) {
        return "?";
    }
    return fmt::format("{}:{}", file ? file : "?", object ? object : "?");
}

// What in a dataset's creation properties reaches outside the file, or nullopt.
std::optional<std::string> dataset_reach(hid_t dataset) {
    Hid dcpl(H5Dget_create_plist(dataset), H5Pclose);
    if (!dcpl) return std::nullopt;  // the read itself will report a corrupt dataset
    if (H5Pget_external_count(dcpl.get()) > 0) {
        char file[256] = {0};
        off_t offset = 0;
        hsize_t size = 0;
        H5Pget_external(dcpl.get(), 0, sizeof file - 1, file, &offset, &size);
        return refusal(fmt::format("stores its data in another file ('{}', external raw-data "
                                   "storage)",
                                   printable(file)),
                       "reads it");
    }
    if (H5Pget_layout(dcpl.get()) == H5D_VIRTUAL) {
        std::size_t count = 0;
        H5Pget_virtual_count(dcpl.get(), &count);
        for (std::size_t i = 0; i < count; ++i) {
            char file[256] = {0};
            H5Pget_virtual_filename(dcpl.get(), i, file, sizeof file - 1);
            if (std::string(file) != ".") {
                return refusal(fmt::format("is a virtual dataset whose source is in another "
                                           "file ('{}')",
                                           printable(file)),
                               "reads it");
            }
        }
    }
    const int filters = H5Pget_nfilters(dcpl.get());
    for (int i = 0; i < filters; ++i) {
        unsigned flags = 0, config = 0;
        std::size_t values = 0;
        char name[128] = {0};
        const H5Z_filter_t id = H5Pget_filter2(dcpl.get(), static_cast<unsigned>(i), &flags,
                                               &values, nullptr, sizeof name - 1, name, &config);
        if (id >= 0 && H5Zfilter_avail(id) <= 0) {
            return refusal(fmt::format("needs HDF5 filter {} ('{}'), a plugin libhdf5 would "
                                       "load from HDF5_PLUGIN_PATH",
                                       id, printable(name)),
                           "loads it");
        }
    }
    return std::nullopt;
}

struct Walk {
    std::string object;  // the first one that reaches outside
    std::string what;
};

herr_t visit(hid_t group, const char* name, const H5L_info_t* info, void* data) {
    auto& walk = *static_cast<Walk*>(data);
    std::optional<std::string> reach;
    if (info->type == H5L_TYPE_EXTERNAL) {
        reach = refusal(fmt::format("is an external link to '{}'",
                                    printable(external_link_target(group, name, *info))),
                        "follows it");
    } else if (info->type == H5L_TYPE_HARD) {
        Hid object(H5Oopen(group, name, H5P_DEFAULT), H5Oclose);
        if (object && H5Iget_type(object.get()) == H5I_DATASET) reach = dataset_reach(object.get());
    }
    if (!reach) return 0;
    walk.object = printable(name);
    walk.what = *reach;
    return 1;  // stop: one refusal is enough
}

}  // namespace

void allow_external_hdf5(bool allow) {
    g_allow_external = allow;
}

bool external_hdf5_allowed() {
    return g_allow_external;
}

void check_self_contained(hid_t file, const std::string& file_name) {
    H5PLset_loading_state(0);
    Walk walk;
    if (H5Lvisit(file, H5_INDEX_NAME, H5_ITER_INC, visit, &walk) < 0 && walk.what.empty()) {
        throw data_error(file_name, "", "cannot list datasets (corrupt file?)");
    }
    if (!walk.what.empty()) throw data_error(file_name, walk.object, walk.what);
}

}  // namespace ropekit
