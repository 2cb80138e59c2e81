#include "ropekit/hdf5/h5_probe_internal.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <hdf5.h>

#include <cerrno>
#include <csignal>
#include <cstring>

#include <fmt/format.h>

#include "ropekit/core/error.hpp"
#include "ropekit/hdf5/h5_datatypes_internal.hpp"

namespace ropekit {

namespace {

// ---------------------------------------------------------------------------------------------
// The child: walk the file, one line per step on `fd`, then exit 0.

void report_step(int fd, const std::string& where) {
    std::string line = where.substr(0, 200);
    for (char& c : line) {
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
    }
    line += '\n';
    for (std::size_t done = 0; done < line.size();) {
        const ssize_t put = ::write(fd, line.data() + done, line.size() - done);
        if (put < 0 && errno == EINTR) continue;
        if (put <= 0) ::_exit(3);  // the parent is gone
        done += static_cast<std::size_t>(put);
    }
}

struct ObjectWalk {
    int fd;
    std::string object;
};

herr_t visit_attribute(hid_t object, const char* name, const H5A_info_t*, void* data) {
    const auto& walk = *static_cast<const ObjectWalk*>(data);
    report_step(walk.fd, walk.object + "@" + name);
    Hid attribute(H5Aopen(object, name, H5P_DEFAULT), H5Aclose);
    try {
        if (attribute) (void)read_attribute(attribute.get(), "", "");
    } catch (...) {  // unsupported or unreadable: the tools report that themselves
    }
    return 0;
}

// What DumpReader and H5Input ask of a dataset: element type, shape, creation properties and,
// for chunked data, the chunk index (H5Dget_storage_size visits every chunk's entry).
void walk_dataset(hid_t dataset) {
    Hid type(H5Dget_type(dataset), H5Tclose);
    if (type) (void)describe_type(type.get());
    Hid space(H5Dget_space(dataset), H5Sclose);
    if (space) (void)H5Sget_simple_extent_npoints(space.get());
    Hid dcpl(H5Dget_create_plist(dataset), H5Pclose);
    if (!dcpl) return;
    (void)H5Pget_nfilters(dcpl.get());
    if (H5Pget_layout(dcpl.get()) == H5D_CHUNKED) (void)H5Dget_storage_size(dataset);
}

void walk_object(hid_t object, const std::string& path, int fd) {
    if (H5Iget_type(object) == H5I_DATASET) walk_dataset(object);
    ObjectWalk walk{fd, path};
    hsize_t index = 0;
    H5Aiterate2(object, H5_INDEX_NAME, H5_ITER_INC, &index, visit_attribute, &walk);
}

herr_t visit_link(hid_t group, const char* name, const H5L_info_t* info, void* data) {
    const int fd = *static_cast<const int*>(data);
    report_step(fd, name);
    if (info->type != H5L_TYPE_HARD) return 0;  // nothing outside the file is opened
    Hid object(H5Oopen(group, name, H5P_DEFAULT), H5Oclose);
    if (object) walk_object(object.get(), name, fd);
    return 0;
}

[[noreturn]] void child_main(const std::string& file, int fd, pid_t parent) {
    // Die with the parent, leave its interrupt handling and its temporaries alone, and keep
    // whatever a crash prints (a sanitizer report) off the user's terminal.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(3);
    for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGPIPE}) std::signal(sig, SIG_DFL);
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    const int null = ::open("/dev/null", O_WRONLY);
    if (null >= 0) ::dup2(null, STDERR_FILENO);
    report_step(fd, "");
    if (H5Fis_hdf5(file.c_str()) > 0) {
        const hid_t id = H5Fopen(file.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
        if (id >= 0) {
            walk_object(id, "/", fd);  // the root's attributes, as the tools reach them
            int walk_fd = fd;
            H5Lvisit(id, H5_INDEX_NAME, H5_ITER_INC, visit_link, &walk_fd);
        }
    }
    ::_exit(0);  // no destructors, no atexit handlers, no stdio flush: they are the parent's
}

// ---------------------------------------------------------------------------------------------
// The parent: follow the child's progress.

// Reads the child's step lines until it closes the pipe (true) or stalls (false); `last` is the
// last step it began.
bool follow(int fd, std::string& last) {
    std::string pending;
    for (;;) {
        pollfd p{fd, POLLIN, 0};
        const int ready = ::poll(&p, 1, kProbeStallSeconds * 1000);
        if (ready < 0 && errno == EINTR) continue;
        if (ready == 0) return false;
        char buffer[4096];
        const ssize_t got = ::read(fd, buffer, sizeof buffer);
        if (got < 0 && errno == EINTR) continue;
        if (got <= 0) return true;
        pending.append(buffer, static_cast<std::size_t>(got));
        for (std::size_t end; (end = pending.find('\n')) != std::string::npos;) {
            last = pending.substr(0, end);
            pending.erase(0, end + 1);
        }
    }
}

}  // namespace

void probe_in_child(const std::string& file, const std::string& name) {
    // OpenBLAS's fork handler joins its pool threads, which under an address-space limit
    // (ulimit -v) can be stuck for ever retrying to map their buffers: fork would never return.
    rlimit limit{};
    if (::getrlimit(RLIMIT_AS, &limit) == 0 && limit.rlim_cur != RLIM_INFINITY) return;
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) return;
    const pid_t parent = ::getpid();
    const pid_t pid = ::fork();
    if (pid < 0) {
        ::close(fds[0]);
        ::close(fds[1]);
        return;
    }
    if (pid == 0) {
        ::close(fds[0]);
        child_main(file, fds[1], parent);
    }
    ::close(fds[1]);
    std::string last;
    const bool finished = follow(fds[0], last);
    ::close(fds[0]);
    if (!finished) ::kill(pid, SIGKILL);
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (!finished) {
        throw data_error(name, last,
                         fmt::format("libhdf5 made no progress reading it for {} s: the file is "
                                     "corrupt (libhdf5 1.10 can loop forever on such files)",
                                     kProbeStallSeconds));
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return;
    throw data_error(name, last,
                     WIFSIGNALED(status)
                         ? fmt::format("libhdf5 crashed reading it ({}): the file is corrupt",
                                       ::strsignal(WTERMSIG(status)))
                         : std::string("libhdf5 failed reading it: the file is corrupt"));
}

}  // namespace ropekit
