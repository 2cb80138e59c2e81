#include "ropekit/core/output_path.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>

#include <fmt/format.h>

#include "ropekit/core/error.hpp"
#include "ropekit/core/interrupt.hpp"

namespace ropekit {

namespace fs = std::filesystem;

namespace {

std::string parent_of(const std::string& path) {
    const fs::path parent = fs::path(path).parent_path();
    return parent.empty() ? "." : parent.string();
}

// mkstemp/mkdtemp create private (0600/0700) entries; a finished output should get the usual
// permissions the user's umask gives.
mode_t user_umask() {
    const mode_t mask = ::umask(0);
    ::umask(mask);
    return mask;
}

std::string temp_template(const std::string& path) {
    const fs::path p(path);
    return (fs::path(parent_of(path)) / ("." + p.filename().string() + ".tmp-XXXXXX")).string();
}

}  // namespace

void check_output_path(const std::string& path, bool force,
                       const std::vector<std::string>& inputs) {
    if (path.empty()) throw usage_error("no output path given (-o)");
    struct stat out {};
    const bool exists = ::stat(path.c_str(), &out) == 0;
    if (exists) {
        for (const std::string& input : inputs) {
            struct stat in {};
            if (input != "-" && ::stat(input.c_str(), &in) == 0 && in.st_dev == out.st_dev &&
                in.st_ino == out.st_ino) {
                throw usage_error(fmt::format(
                    "{}: output is also an input; refusing to overwrite it (choose another -o)",
                    path));
            }
        }
        if (!force) {
            throw usage_error(fmt::format("{}: output exists; pass --force to replace it", path));
        }
    }
    const std::string dir = parent_of(path);
    struct stat d {};
    if (::stat(dir.c_str(), &d) != 0 || !S_ISDIR(d.st_mode)) {
        throw data_error(path, "", fmt::format("output directory '{}' does not exist", dir));
    }
}

std::string make_temp_beside(const std::string& path) {
    std::string name = temp_template(path);
    const InterruptsHeld held;  // created and registered as one step
    const int fd = ::mkstemp(name.data());
    if (fd < 0) {
        throw data_error(
            path, "",
            fmt::format("cannot write in '{}': {}", parent_of(path), std::strerror(errno)));
    }
    ::fchmod(fd, 0666 & ~user_umask());
    ::close(fd);
    register_temporary(name);
    return name;
}

std::FILE* open_for_writing(const std::string& path) {
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0666);
    if (fd < 0) return nullptr;
    struct stat st {};
    if (::fstat(fd, &st) != 0 || (st.st_size > 0 && ::ftruncate(fd, 0) != 0)) {
        const int err = errno;
        ::close(fd);
        errno = err;
        return nullptr;
    }
    std::FILE* f = ::fdopen(fd, "wb");
    if (!f) {
        const int err = errno;
        ::close(fd);
        errno = err;
    }
    return f;
}

std::string make_temp_dir_beside(const std::string& path) {
    std::string name = temp_template(path);
    const InterruptsHeld held;
    if (::mkdtemp(name.data()) == nullptr) {
        throw data_error(
            path, "",
            fmt::format("cannot write in '{}': {}", parent_of(path), std::strerror(errno)));
    }
    ::chmod(name.c_str(), 0777 & ~user_umask());
    register_temporary(name);
    return name;
}

void commit_temp(const std::string& temp, const std::string& path) {
    begin_commit();
    std::error_code ec;
    if (fs::is_directory(temp) && fs::exists(path)) {
        // rename() cannot replace a non-empty directory: move the old one aside first.
        const std::string old = make_temp_dir_beside(path);
        fs::remove(old);
        unregister_temporary(old);
        fs::rename(path, old, ec);
        if (ec) throw data_error(path, "", "cannot replace the existing output: " + ec.message());
        fs::rename(temp, path, ec);
        if (ec) {
            fs::rename(old, path);
            throw data_error(path, "",
                             "cannot move the finished output into place: " + ec.message());
        }
        fs::remove_all(old, ec);
        return;
    }
    fs::rename(temp, path, ec);
    if (ec)
        throw data_error(path, "", "cannot move the finished output into place: " + ec.message());
}

void write_text_output(const std::string& path, const std::string& content, bool force,
                       const std::vector<std::string>& inputs) {
    OutputBatch batch;
    batch.add_text(path, content, force, inputs);
    batch.commit();
}

void check_output_directory(const std::string& dir, const std::string& what) {
    struct stat d {};
    if (::stat(dir.c_str(), &d) != 0 || !S_ISDIR(d.st_mode)) {
        throw data_error(what, "", fmt::format("output directory '{}' does not exist", dir));
    }
    if (::access(dir.c_str(), W_OK | X_OK) != 0) {
        throw data_error(what, "", fmt::format("cannot write in '{}'", dir));
    }
}

void check_file_output(const std::string& path, bool force,
                       const std::vector<std::string>& inputs) {
    if (path == "-") return;
    struct stat out {};
    if (::stat(path.c_str(), &out) == 0 && S_ISDIR(out.st_mode)) {
        throw usage_error(fmt::format("{}: is a directory; -o takes a file name", path));
    }
    check_output_path(path, force, inputs);
    check_output_directory(parent_of(path), path);
}

void OutputBatch::add(std::unique_ptr<TempOutput> temp, std::string target) {
    pending_.push_back({std::move(temp), std::move(target), {}});
}

void OutputBatch::add_text(const std::string& path, const std::string& content, bool force,
                           const std::vector<std::string>& inputs) {
    if (path == "-") {
        pending_.push_back({nullptr, path, content});
        return;
    }
    check_file_output(path, force, inputs);
    auto temp = std::make_unique<TempOutput>(make_temp_beside(path));
    std::FILE* f = open_for_writing(temp->path());
    if (!f) throw data_error(path, "", std::string("cannot write: ") + std::strerror(errno));
    const bool written = std::fwrite(content.data(), 1, content.size(), f) == content.size();
    if (std::fclose(f) != 0 || !written) {
        throw data_error(path, "", "write failed (disk full?)");
    }
    add(std::move(temp), path);
}

void OutputBatch::commit() {
    for (Pending& p : pending_) {
        if (p.temp) {
            p.temp->commit_to(p.target);
            continue;
        }
        std::fwrite(p.content.data(), 1, p.content.size(), stdout);
        if (std::fflush(stdout) != 0) throw data_error("<stdout>", "", "write failed");
    }
    pending_.clear();
}

TempOutput::~TempOutput() {
    if (path_.empty()) return;
    std::error_code ec;
    fs::remove_all(path_, ec);
    unregister_temporary(path_);
}

void TempOutput::commit_to(const std::string& target) {
    commit_temp(path_, target);
    unregister_temporary(path_);
    path_.clear();
}

}  // namespace ropekit
