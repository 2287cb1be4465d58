// bench:streamer's physical limit: a plain copy of a folder over one TCP connection, no integrity check, in C.
//
//   native-copy send <dir>
//     listens on 127.0.0.1 (a port the kernel picks) and prints "listening <port>" on stderr; to the one connection
//     it sends every regular file below <dir> with sendfile(2), each after a header (u32 LE name length, the name,
//     u64 LE size), then a zero name length; waits for the receiver's one-byte ack; prints "DONE <ns>"
//     (CLOCK_MONOTONIC, the clock Node's process.hrtime reads).
//   native-copy recv <host> <port> <dir> <write-KiB>
//     prints "ready" on stderr, waits for a line on stdin ("go"), connects, and writes each file below <dir>: reads
//     fill a 1 MiB block (or the rest of the file), written in write(2)s of <write-KiB>, so writes are whole and
//     aligned to the file's offsets (as haul writes; unaligned writes of whatever a read returned cost the page cache
//     more); closes every file, then acks with one byte. raw-recv.mjs reads and writes the same way.
//
// Both then wait for stdin to close before they exit, so the benchmark can read their CPU time while they live.
// The same wire format as raw-send.mjs / raw-recv.mjs.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static int sock = -1;
// The receiver's reads fill a block this large: a read per 1 MiB, not per write (each read that empties the socket
// makes the kernel send a window update, which on loopback the receiver itself processes).
static const size_t BLOCK = 1 << 20;
static const char *root;

static void die(const char *what) {
  fprintf(stderr, "native-copy: %s: %s\n", what, strerror(errno));
  exit(1);
}

static void write_all(int fd, const void *buf, size_t n) {
  const char *p = buf;
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) die("write");
    p += w;
    n -= (size_t)w;
  }
}

static void read_all(int fd, void *buf, size_t n) {
  char *p = buf;
  while (n > 0) {
    ssize_t r = recv(fd, p, n, MSG_WAITALL);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) die("read");
    p += r;
    n -= (size_t)r;
  }
}

static void done_and_wait(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  fprintf(stderr, "DONE %lld\n", (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec);
  char c;
  while (read(0, &c, 1) > 0) {
  }
}

static int send_one(const char *path, const struct stat *st, int type, struct FTW *ftw) {
  (void)ftw;
  if (type != FTW_F || !S_ISREG(st->st_mode)) return 0;
  const char *name = path + strlen(root) + 1;
  uint32_t nlen = (uint32_t)strlen(name);
  uint64_t size = (uint64_t)st->st_size;
  write_all(sock, &nlen, 4);
  write_all(sock, name, nlen);
  write_all(sock, &size, 8);
  int fd = open(path, O_RDONLY);
  if (fd < 0) die(path);
  off_t off = 0;
  while ((uint64_t)off < size) {
    ssize_t n = sendfile(sock, fd, &off, size - (uint64_t)off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) die("sendfile");
  }
  close(fd);
  return 0;
}

static int do_send(const char *dir) {
  root = dir;
  int srv = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t al = sizeof a;
  if (srv < 0 || bind(srv, (struct sockaddr *)&a, sizeof a) || listen(srv, 1) ||
      getsockname(srv, (struct sockaddr *)&a, &al))
    die("listen");
  fprintf(stderr, "listening %d\n", ntohs(a.sin_port));
  sock = accept(srv, NULL, NULL);
  if (sock < 0) die("accept");
  close(srv);
  int one = 1;
  setsockopt(sock, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (nftw(dir, send_one, 16, FTW_PHYS)) die("walk");
  uint32_t end = 0;
  write_all(sock, &end, 4);
  char ack;
  read_all(sock, &ack, 1);
  close(sock);
  done_and_wait();
  return 0;
}

static void mkdirs_for(char *path) {
  for (char *p = strchr(path + 1, '/'); p; p = strchr(p + 1, '/')) {
    *p = 0;
    if (mkdir(path, 0755) && errno != EEXIST) die(path);
    *p = '/';
  }
}

static int do_recv(const char *host, int port, const char *dir, size_t slice) {
  fprintf(stderr, "ready\n");
  char line[16];
  if (!fgets(line, sizeof line, stdin)) die("stdin");
  sock = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  if (sock < 0 || inet_pton(AF_INET, host, &a.sin_addr) != 1 || connect(sock, (struct sockaddr *)&a, sizeof a))
    die("connect");
  char *buf = malloc(BLOCK);
  char path[8192];
  for (;;) {
    uint32_t nlen;
    read_all(sock, &nlen, 4);
    if (nlen == 0) break;
    int at = snprintf(path, sizeof path, "%s/", dir);
    if (nlen >= sizeof path - (size_t)at) die("name too long");
    read_all(sock, path + at, nlen);
    path[at + (int)nlen] = 0;
    uint64_t left;
    read_all(sock, &left, 8);
    mkdirs_for(path);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) die(path);
    while (left > 0) {
      size_t want = left < BLOCK ? (size_t)left : BLOCK;
      read_all(sock, buf, want);
      for (size_t at = 0; at < want; at += slice) write_all(fd, buf + at, want - at < slice ? want - at : slice);
      left -= want;
    }
    close(fd);
  }
  write_all(sock, "k", 1);
  char c;
  while (read(0, &c, 1) > 0) {
  }
  return 0;
}

int main(int argc, char **argv) {
  if (argc == 3 && !strcmp(argv[1], "send")) return do_send(argv[2]);
  if (argc == 6 && !strcmp(argv[1], "recv")) return do_recv(argv[2], atoi(argv[3]), argv[4], (size_t)atoi(argv[5]) * 1024);
  fprintf(stderr, "usage: native-copy send <dir> | recv <host> <port> <dir> <write-KiB>\n");
  return 2;
}
