/* cli: `asrd backup DEST` and `asrd restore SRC`: a server's data, copied while it runs, and put
 * back.
 *
 * A backup directory holds:
 *   asrd.db        the SQLite database, through SQLite's online backup API (one snapshot, taken
 *                  while the server writes: asr_store_sqlite_backup);
 *   secret.key     the data directory's key file, which decrypts the stored backend API keys
 *                  (absent when the key comes from ASRD_SECRET_KEY: the manifest says so);
 *   recordings/    every file of the recordings directory, copied one by one and fsync'd;
 *   manifest.json  written last (atomically): format, asrd and schema versions, row and file
 *                  counts, bytes, and each file's size and SHA-256. A directory without it is an
 *                  unfinished backup.
 * The database is copied first and the recordings after: a recording uploaded meanwhile has a
 * file and no row (the restored server's start-up sweep removes it, logged); one deleted meanwhile
 * has a row and no file (listed under missing_audio, with a warning).
 *
 * With PostgreSQL (database = a postgres:// URL) the key file and the recordings are copied and
 * the pg_dump command to run is printed; --pg-dump runs it (when pg_dump is installed) into
 * DEST/asrd.pgdump, listed in the manifest like any file.
 *
 * Restore verifies every file against the manifest (size and SHA-256) before writing anything,
 * refuses a database newer than this binary, and refuses a data directory that is not empty
 * unless --force (then the database's -wal/-shm files go too: a stale WAL must never be applied
 * to the restored file). Run it with the server stopped. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "config/config.h"
#include "core/core.h"
#include "jobs/jobs.h"
#include "store/store.h"

extern char **environ;

#define MANIFEST "manifest.json"
#define FORMAT "asrd-backup"
#define FORMAT_VERSION 1

typedef struct {
    char *data;      /* data directory (home expanded) */
    char *db_path;   /* SQLite file; NULL with PostgreSQL */
    char *pg_url;    /* NULL with SQLite */
    char *recdir;    /* recordings directory */
    bool key_env;    /* ASRD_SECRET_KEY is set */
    bool force;      /* restore: overwrite a non-empty data directory */
    bool pg_dump;    /* backup: run pg_dump */
    const char *dir; /* DEST or SRC */
} opts_t;

static void opts_free(opts_t *o) {
    free(o->data);
    free(o->db_path);
    free(o->pg_url);
    free(o->recdir);
}

static char *join(const char *a, const char *b) {
    asr_buf_t p;
    asr_buf_init(&p);
    asr_buf_printf(&p, "%s/%s", a, b);
    return asr_buf_steal(&p);
}

/* Settings as `asrd serve` reads them (the file asr_cli_config_path names < env < flags), besides
 * the command's own flags. */
static int parse(const char *cmd, int argc, char **argv, opts_t *o) {
    memset(o, 0, sizeof *o);
    char **rest = asr_xcalloc((size_t)argc + 1, sizeof *rest);
    int n = 0;
    rest[n++] = argv[0];
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--force"))
            o->force = true;
        else if (!strcmp(argv[i], "--pg-dump"))
            o->pg_dump = true;
        else if (argv[i][0] != '-' && !o->dir)
            o->dir = argv[i];
        else {
            rest[n++] = argv[i];
            /* a flag's value: --name VALUE (not --name=VALUE, not a boolean's --no-name) */
            if (i + 1 < argc && argv[i][0] == '-' && !strchr(argv[i], '=') && argv[i + 1][0] != '-')
                rest[n++] = argv[++i];
        }
    }
    asr_config_t cfg;
    asr_config_init(&cfg);
    char err[512] = "";
    const char *file = asr_cli_config_path(n, rest); /* serve's: --config, $ASRD_CONFIG, /etc */
    asr_cfg_action_t action = ASR_CFG_ACTION_RUN;
    int rc = 0;
    if ((file && asr_config_load_file(&cfg, file, err, sizeof err) != ASR_OK) ||
        asr_config_load_env(&cfg, err, sizeof err) != ASR_OK ||
        asr_config_parse_args(&cfg, n, rest, &action, err, sizeof err) != ASR_OK) {
        fprintf(stderr, "asrd: %s: %s\n", cmd, err);
        rc = 2;
    } else if (!o->dir || action != ASR_CFG_ACTION_RUN) {
        fprintf(stderr, "usage: asrd backup DEST [--pg-dump] [--data DIR] [--database URL] "
                        "[--recordings-dir DIR] [--config FILE]\n"
                        "       asrd restore SRC [--force] [--data DIR] [--recordings-dir DIR] "
                        "[--config FILE]\n");
        rc = 2;
    } else {
        o->data = asr_cli_expand_home(cfg.data);
        const char *db = cfg.database;
        if (!strncmp(db, "postgres://", 11) || !strncmp(db, "postgresql://", 13))
            o->pg_url = asr_xstrdup(db);
        else if (!strcmp(db, "sqlite"))
            o->db_path = join(o->data, "asrd.db");
        else
            o->db_path = asr_cli_expand_home(!strncmp(db, "sqlite:", 7) ? db + 7 : db);
        o->recdir = strcmp(cfg.recordings_dir, "auto") ? asr_cli_expand_home(cfg.recordings_dir)
                                                       : join(o->data, "recordings");
        o->key_env = getenv("ASRD_SECRET_KEY") && *getenv("ASRD_SECRET_KEY");
    }
    asr_config_deinit(&cfg);
    free(rest);
    return rc;
}

static int fsync_path(const char *path, bool dir) {
    int fd = open(path, (dir ? O_RDONLY | O_DIRECTORY : O_RDONLY) | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

static void hex(const unsigned char *d, unsigned n, char *out) {
    for (unsigned i = 0; i < n; i++)
        snprintf(out + 2 * i, 3, "%02x", d[i]);
}

/* Copies from -> to (created with `mode`, replacing) through to.tmp, fsync'd, renamed; or only
 * hashes `from` when to is NULL. sha256 gets 64 hex digits; *bytes the size. */
static int copy_hash(const char *from, const char *to, unsigned mode, char sha256[65],
                     int64_t *bytes, char *err, size_t errlen) {
    int in = open(from, O_RDONLY | O_CLOEXEC), out = -1, rc = -1;
    char *tmp = NULL;
    if (to) {
        asr_buf_t b;
        asr_buf_init(&b);
        asr_buf_printf(&b, "%s.tmp", to);
        tmp = asr_buf_steal(&b);
    }
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    *bytes = 0;
    if (in < 0) {
        asr_errf(err, errlen, "cannot read %s: %s", from, strerror(errno));
        goto done;
    }
    if (tmp && (out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode)) < 0) {
        asr_errf(err, errlen, "cannot create %s: %s", tmp, strerror(errno));
        goto done;
    }
    if (!md || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1) {
        asr_errf(err, errlen, "sha256: cannot initialise OpenSSL digest");
        goto done;
    }
    static char buf[1 << 16];
    ssize_t n;
    while ((n = read(in, buf, sizeof buf)) != 0) {
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            asr_errf(err, errlen, "cannot read %s: %s", from, strerror(errno));
            goto done;
        }
        EVP_DigestUpdate(md, buf, (size_t)n);
        *bytes += n;
        for (ssize_t off = 0; out >= 0 && off < n;) {
            ssize_t w = write(out, buf + off, (size_t)(n - off));
            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0) {
                asr_errf(err, errlen, "cannot write %s: %s", tmp, strerror(errno));
                goto done;
            }
            off += w;
        }
    }
    unsigned char d[32];
    unsigned dl = 0;
    EVP_DigestFinal_ex(md, d, &dl);
    hex(d, 32, sha256);
    if (out >= 0) {
        if (fchmod(out, mode) != 0 || fsync(out) != 0 || close(out) != 0) {
            out = -1;
            asr_errf(err, errlen, "cannot write %s: %s", tmp, strerror(errno));
            goto done;
        }
        out = -1;
        if (rename(tmp, to) != 0) {
            asr_errf(err, errlen, "cannot rename %s: %s", tmp, strerror(errno));
            goto done;
        }
    }
    rc = 0;
done:
    if (out >= 0)
        close(out);
    if (rc && tmp)
        unlink(tmp);
    if (in >= 0)
        close(in);
    EVP_MD_CTX_free(md);
    free(tmp);
    return rc;
}

/* Adds {path, bytes, sha256} to files and the totals. */
static void add_file(json_t *files, const char *rel, int64_t bytes, const char *sha) {
    json_t *f = json_object();
    json_object_set_new(f, "path", json_string(rel));
    json_object_set_new(f, "bytes", json_integer(bytes));
    json_object_set_new(f, "sha256", json_string(sha));
    json_array_append_new(files, f);
}

/* Copies src/rel (rel under the backup) and records it. */
static int backup_file(const char *src, const char *dest, const char *rel, unsigned mode,
                       json_t *files, int64_t *total, char *err, size_t errlen) {
    char *to = join(dest, rel), sha[65];
    int64_t bytes = 0;
    int rc = copy_hash(src, to, mode, sha, &bytes, err, errlen);
    free(to);
    if (rc == 0) {
        add_file(files, rel, bytes, sha);
        *total += bytes;
    }
    return rc;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The regular files of dir (sorted, malloc'd names); NULL with *n 0 when there is no dir. */
static char **list_files(const char *dir, size_t *n) {
    *n = 0;
    DIR *d = opendir(dir);
    if (!d)
        return NULL;
    size_t cap = 16;
    char **v = asr_xcalloc(cap, sizeof *v);
    struct dirent *de;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.' || strstr(de->d_name, ".tmp"))
            continue;
        char *p = join(dir, de->d_name);
        struct stat st;
        bool reg = lstat(p, &st) == 0 && S_ISREG(st.st_mode);
        free(p);
        if (!reg)
            continue;
        if (*n + 1 >= cap)
            v = asr_xrealloc(v, (cap *= 2) * sizeof *v);
        v[(*n)++] = asr_xstrdup(de->d_name);
    }
    closedir(d);
    qsort(v, *n, sizeof *v, cmp_str);
    return v;
}

static void free_list(char **v, size_t n) {
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

static bool dir_empty(const char *dir) {
    DIR *d = opendir(dir);
    if (!d)
        return true;
    struct dirent *de;
    bool empty = true;
    while (empty && (de = readdir(d)))
        empty = !strcmp(de->d_name, ".") || !strcmp(de->d_name, "..");
    closedir(d);
    return empty;
}

/* Runs pg_dump (when on PATH) into DEST/asrd.pgdump. */
static int run_pg_dump(const opts_t *o, const char *dest, char *err, size_t errlen) {
    char *out = join(dest, "asrd.pgdump");
    char *argv[] = {"pg_dump", "--format=custom", "--no-owner", "--file", out, o->pg_url, NULL};
    pid_t pid;
    int st = 0, rc = posix_spawnp(&pid, "pg_dump", NULL, NULL, argv, environ);
    if (rc != 0)
        asr_errf(err, errlen,
                 "cannot run pg_dump: %s (is it installed? apt install "
                 "postgresql-client)",
                 strerror(rc));
    else if (waitpid(pid, &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
        asr_errf(err, errlen, "pg_dump failed (exit status %d)",
                 WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    free(out);
    return rc == 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
}

/* Writes the manifest atomically: DEST/manifest.json.tmp, fsync, rename, fsync DEST. */
static int write_manifest(const char *dest, json_t *m, char *err, size_t errlen) {
    char *path = join(dest, MANIFEST), *tmp = join(dest, MANIFEST ".tmp");
    int rc = json_dump_file(m, tmp, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    if (rc == 0)
        rc = fsync_path(tmp, false);
    if (rc == 0)
        rc = rename(tmp, path);
    if (rc == 0)
        rc = fsync_path(dest, true);
    if (rc)
        asr_errf(err, errlen, "cannot write %s: %s", path, strerror(errno));
    free(path);
    free(tmp);
    return rc;
}

static const char *base_name(const char *p) {
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

/* The database part of a backup: the snapshot, its counts, and which recording files it names. */
static int backup_db(const opts_t *o, const char *dest, json_t *m, json_t *files, int64_t *total,
                     asr_store_backup_info_t *info, char *err, size_t errlen) {
    char *to = join(dest, "asrd.db"), *tmp = join(dest, "asrd.db.tmp");
    int rc = -1;
    if (asr_store_sqlite_backup(o->db_path, tmp, info, err, errlen) == ASR_OK &&
        rename(tmp, to) == 0) {
        char sha[65];
        int64_t bytes = 0;
        rc = copy_hash(to, NULL, 0, sha, &bytes, err, errlen);
        if (rc == 0) {
            add_file(files, "asrd.db", bytes, sha);
            *total += bytes;
        }
    }
    unlink(tmp);
    json_object_set_new(m, "schema_version", json_integer(info->schema_version));
    json_t *rows = json_object();
    json_object_set_new(rows, "recordings", json_integer(info->n_recordings));
    json_object_set_new(rows, "jobs", json_integer(info->n_jobs));
    json_object_set_new(rows, "asr_configs", json_integer(info->n_configs));
    json_object_set_new(m, "rows", rows);
    free(to);
    free(tmp);
    return rc;
}

static int do_backup(const opts_t *o) {
    char err[1024] = "", why[512];
    const char *dest = o->dir;
    if (!dir_empty(dest)) {
        fprintf(stderr, "asrd: backup: %s is not empty (a backup goes to a new directory)\n", dest);
        return 1;
    }
    char *recdest = join(dest, "recordings");
    if (asr_mkdir_p(recdest, 0700, why, sizeof why) != ASR_OK) {
        fprintf(stderr, "asrd: backup: %s\n", why);
        free(recdest);
        return 1;
    }
    json_t *m = json_object(), *files = json_array(), *missing = json_array();
    json_object_set_new(m, "format", json_string(FORMAT));
    json_object_set_new(m, "format_version", json_integer(FORMAT_VERSION));
    json_object_set_new(m, "created_at", json_integer((json_int_t)time(NULL)));
    json_object_set_new(m, "database", json_string(o->pg_url ? "postgres" : "sqlite"));
    int64_t total = 0, rec_bytes = 0;
    asr_store_backup_info_t info = {0};
    int rc = 1;
    char **names = NULL;
    size_t n = 0;
    if (o->db_path && backup_db(o, dest, m, files, &total, &info, err, sizeof err) != 0)
        goto done;
    if (o->pg_url) {
        json_object_set_new(m, "schema_version", json_null());
        if (o->pg_dump && run_pg_dump(o, dest, err, sizeof err) != 0)
            goto done;
        if (o->pg_dump) {
            char *p = join(dest, "asrd.pgdump"), sha[65];
            int64_t bytes = 0;
            int r = copy_hash(p, NULL, 0, sha, &bytes, err, sizeof err);
            free(p);
            if (r)
                goto done;
            add_file(files, "asrd.pgdump", bytes, sha);
            total += bytes;
        }
    }
    /* the key file */
    char *key = join(o->data, "secret.key");
    bool have_key = access(key, R_OK) == 0;
    if (have_key && backup_file(key, dest, "secret.key", 0600, files, &total, err, sizeof err)) {
        free(key);
        goto done;
    }
    free(key);
    json_object_set_new(m, "secret_key",
                        json_string(o->key_env ? "ASRD_SECRET_KEY"
                                    : have_key ? "secret.key"
                                               : "none"));
    /* the recordings, file by file */
    names = list_files(o->recdir, &n);
    size_t n_copied = 0;
    for (size_t i = 0; i < n; i++) {
        char *from = join(o->recdir, names[i]), rel[1024];
        snprintf(rel, sizeof rel, "recordings/%s", names[i]);
        int64_t before = total;
        int r = backup_file(from, dest, rel, 0600, files, &total, err, sizeof err);
        bool gone = r != 0 && access(from, F_OK) != 0; /* deleted meanwhile */
        free(from);
        if (gone)
            continue;
        if (r != 0)
            goto done;
        n_copied++;
        rec_bytes += total - before;
    }
    if (fsync_path(recdest, true) != 0) {
        asr_errf(err, sizeof err, "cannot fsync %s: %s", recdest, strerror(errno));
        goto done;
    }
    for (int64_t i = 0; i < info.n_recordings; i++) {
        const char *b = base_name(info.paths[i]);
        if (*b && !(names && bsearch(&b, names, n, sizeof *names, cmp_str)))
            json_array_append_new(missing, json_string(b));
    }
    json_t *counts = json_object();
    json_object_set_new(counts, "files", json_integer((json_int_t)json_array_size(files)));
    json_object_set_new(counts, "bytes", json_integer(total));
    json_object_set_new(counts, "recording_files", json_integer((json_int_t)n_copied));
    json_object_set_new(counts, "recording_bytes", json_integer(rec_bytes));
    json_object_set_new(m, "counts", counts);
    json_object_set_new(m, "missing_audio", json_incref(missing));
    json_object_set_new(m, "files", json_incref(files));
    if (write_manifest(dest, m, err, sizeof err) != 0)
        goto done;
    rc = 0;
    printf("backup: %s: %s, %zu file(s), %lld bytes; %lld recording(s), %zu recording file(s)\n",
           dest, o->pg_url ? "postgres (see below)" : "sqlite", json_array_size(files),
           (long long)total, (long long)info.n_recordings, n_copied);
    if (json_array_size(missing))
        fprintf(stderr,
                "asrd: backup: warning: %zu recording(s) have no file (deleted while the backup "
                "ran?); see missing_audio in %s/" MANIFEST "\n",
                json_array_size(missing), dest);
    if (o->key_env)
        fprintf(stderr, "asrd: backup: the secret key comes from ASRD_SECRET_KEY and is not in the "
                        "backup: keep it, the stored API keys cannot be read without it\n");
    if (o->pg_url && !o->pg_dump)
        printf("PostgreSQL: the database is not in this backup. Dump it with:\n"
               "  pg_dump --format=custom --no-owner --file %s/asrd.pgdump 'URL'\n"
               "(URL = your database setting; or run `asrd backup --pg-dump` where pg_dump is "
               "installed). Restore with pg_restore --no-owner --dbname 'URL' asrd.pgdump.\n",
               dest);
done:
    if (rc)
        fprintf(stderr, "asrd: backup: %s\n", err);
    free_list(names, n);
    asr_store_backup_info_clear(&info);
    json_decref(files);
    json_decref(missing);
    json_decref(m);
    free(recdest);
    return rc;
}

/* Checks every file of the manifest against SRC; writes the first mismatch to err. */
static int verify(const char *src, json_t *files, char *err, size_t errlen) {
    size_t i;
    json_t *f;
    json_array_foreach(files, i, f) {
        const char *rel = json_string_value(json_object_get(f, "path"));
        const char *want = json_string_value(json_object_get(f, "sha256"));
        json_int_t bytes = json_integer_value(json_object_get(f, "bytes"));
        if (!rel || !want || strstr(rel, "..") || rel[0] == '/') {
            asr_errf(err, errlen, "manifest: file %zu has no valid path or sha256", i);
            return -1;
        }
        char *p = join(src, rel), sha[65];
        int64_t got = 0;
        int rc = copy_hash(p, NULL, 0, sha, &got, err, errlen);
        free(p);
        if (rc)
            return -1;
        if (got != bytes || strcmp(sha, want)) {
            asr_errf(err, errlen,
                     "%s does not match the manifest (%lld bytes, sha256 %s; expected %lld bytes, "
                     "sha256 %s): the backup was changed or damaged",
                     rel, (long long)got, sha, (long long)bytes, want);
            return -1;
        }
    }
    return 0;
}

static int do_restore(const opts_t *o) {
    char err[1024] = "", why[512];
    char *mpath = join(o->dir, MANIFEST);
    json_error_t je;
    json_t *m = json_load_file(mpath, 0, &je), *files = m ? json_object_get(m, "files") : NULL;
    int rc = 1;
    if (!m) {
        asr_errf(err, sizeof err, "%s: %s (not a finished asrd backup)", mpath, je.text);
        goto done;
    }
    const char *fmt = json_string_value(json_object_get(m, "format"));
    json_int_t schema = json_integer_value(json_object_get(m, "schema_version"));
    if (!fmt || strcmp(fmt, FORMAT) || !json_is_array(files) ||
        json_integer_value(json_object_get(m, "format_version")) != FORMAT_VERSION) {
        asr_errf(err, sizeof err, "%s: not an asrd backup manifest (format %s version %d)", mpath,
                 FORMAT, FORMAT_VERSION);
        goto done;
    }
    if (schema > asr_store_schema_latest()) {
        asr_errf(err, sizeof err,
                 "the backup's database schema version %lld is newer than this asrd (knows up to "
                 "%d): restore it with the asrd that made it",
                 (long long)schema, asr_store_schema_latest());
        goto done;
    }
    if (verify(o->dir, files, err, sizeof err) != 0)
        goto done;
    if (!dir_empty(o->data) && !o->force) {
        asr_errf(err, sizeof err,
                 "%s is not empty: restore into a new data directory, or pass --force to replace "
                 "its database, key file and recordings (stop the server first)",
                 o->data);
        goto done;
    }
    if (asr_mkdir_p(o->data, 0700, why, sizeof why) != ASR_OK ||
        asr_mkdir_p(o->recdir, 0755, why, sizeof why) != ASR_OK) {
        asr_errf(err, sizeof err, "%s", why);
        goto done;
    }
    const char *db = json_string_value(json_object_get(m, "database"));
    if (db && !strcmp(db, "sqlite") && o->db_path) {
        /* a stale WAL beside the restored file would be applied to it */
        for (int i = 0; i < 2; i++) {
            asr_buf_t b;
            asr_buf_init(&b);
            asr_buf_printf(&b, "%s%s", o->db_path, i ? "-shm" : "-wal");
            char *p = asr_buf_steal(&b);
            unlink(p);
            free(p);
        }
    }
    size_t i, n_rec = 0;
    json_t *f;
    json_array_foreach(files, i, f) {
        const char *rel = json_string_value(json_object_get(f, "path"));
        char *from = join(o->dir, rel), *to = NULL, sha[65];
        if (!strcmp(rel, "asrd.db"))
            to = o->db_path ? asr_xstrdup(o->db_path) : NULL;
        else if (!strcmp(rel, "secret.key"))
            to = join(o->data, "secret.key");
        else if (!strncmp(rel, "recordings/", 11))
            to = join(o->recdir, rel + 11), n_rec++;
        int64_t bytes = 0;
        int r = to ? copy_hash(from, to, strcmp(rel, "secret.key") ? 0644 : 0600, sha, &bytes, err,
                               sizeof err)
                   : 0;
        if (!to)
            printf("restore: %s is not restored by asrd (see below)\n", rel);
        free(from);
        free(to);
        if (r)
            goto done;
    }
    if (fsync_path(o->recdir, true) != 0 || fsync_path(o->data, true) != 0) {
        asr_errf(err, sizeof err, "cannot fsync %s: %s", o->data, strerror(errno));
        goto done;
    }
    rc = 0;
    printf("restore: %s -> %s: %zu file(s) verified and restored, %zu recording file(s)\n", o->dir,
           o->data, json_array_size(files), n_rec);
    const char *key = json_string_value(json_object_get(m, "secret_key"));
    if (key && !strcmp(key, "ASRD_SECRET_KEY"))
        printf("The stored API keys were encrypted under ASRD_SECRET_KEY: start the server with "
               "the same value.\n");
    if (db && !strcmp(db, "postgres"))
        printf("PostgreSQL: restore the database with pg_restore --no-owner --dbname 'URL' "
               "%s/asrd.pgdump (made by pg_dump; see asrd backup).\n",
               o->dir);
done:
    if (rc)
        fprintf(stderr, "asrd: restore: %s\n", err);
    json_decref(m);
    free(mpath);
    return rc;
}

int asr_cli_backup(int argc, char **argv) {
    opts_t o;
    int rc = parse("backup", argc, argv, &o);
    if (rc == 0)
        rc = do_backup(&o);
    opts_free(&o);
    return rc;
}

int asr_cli_restore(int argc, char **argv) {
    opts_t o;
    int rc = parse("restore", argc, argv, &o);
    if (rc == 0)
        rc = do_restore(&o);
    opts_free(&o);
    return rc;
}
