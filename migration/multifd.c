/*
 * Multifd over sockets: the packet codec and the channels' threads.
 * See multifd.h.
 */
#include "multifd.h"
#include "util/bswap.h"
#include "util/bufferzero.h"
#include "util/error.h"
#include "util/fault.h"
#include "util/osdep.h"
#include "util/thread.h"
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

/* ------------------------------------------------------------------ */
/* codec                                                               */

/*
 * Initial packet: be32 magic, be32 version, uuid[16], u8 id, 39 bytes 0.
 * Packet header: be32 magic, version, flags, pages_alloc, normal_pages,
 * next_packet_size, be64 packet_num, be32 zero_pages, 28 bytes reserved,
 * idstr[256], be64 offsets[128].
 */
enum {
    INIT_UUID = 8,
    INIT_ID = 24,
    PKT_FLAGS = 8,
    PKT_PAGES_ALLOC = 12,
    PKT_NORMAL = 16,
    PKT_NEXT_SIZE = 20,
    PKT_NUM = 24,
    PKT_ZERO = 32,
    PKT_IDSTR = 64,
    PKT_OFFSETS = 320,
};

void multifd_encode_init(uint8_t buf[MULTIFD_INIT_SIZE], const uint8_t uuid[16], uint8_t id)
{
    memset(buf, 0, MULTIFD_INIT_SIZE);
    stl_be_p(buf, MULTIFD_MAGIC);
    stl_be_p(buf + 4, MULTIFD_VERSION);
    memcpy(buf + INIT_UUID, uuid, 16);
    buf[INIT_ID] = id;
}

static void uuid_unparse(const uint8_t u[16], char out[37])
{
    snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-"
             "%02x%02x%02x%02x%02x%02x", u[0], u[1], u[2], u[3], u[4], u[5], u[6], u[7],
             u[8], u[9], u[10], u[11], u[12], u[13], u[14], u[15]);
}

bool multifd_decode_init(const uint8_t buf[MULTIFD_INIT_SIZE], const uint8_t uuid[16],
                         unsigned channels, uint8_t *id, GError **errp)
{
    uint32_t magic = ldl_be_p(buf), version = ldl_be_p(buf + 4);

    if (magic != MULTIFD_MAGIC) {
        error_setg(errp, "multifd: received packet magic %x expected %x", magic, MULTIFD_MAGIC);
        return false;
    }
    if (version != MULTIFD_VERSION) {
        error_setg(errp, "multifd: received packet version %u expected %u", version,
                   MULTIFD_VERSION);
        return false;
    }
    *id = buf[INIT_ID];
    if (memcmp(buf + INIT_UUID, uuid, 16) != 0) {
        char got[37], want[37];
        uuid_unparse(buf + INIT_UUID, got);
        uuid_unparse(uuid, want);
        error_setg(errp, "multifd: received uuid '%s' and expected uuid '%s' for channel %hhd",
                   got, want, (signed char)*id);
        return false;
    }
    /* QEMU lets id == channels through and indexes past its array; we do not */
    if (*id >= channels) {
        error_setg(errp, "multifd: received channel id %u is greater than number of "
                   "channels %u", *id, channels);
        return false;
    }
    return true;
}

void multifd_encode_packet(const MultiFDPacket *p, uint8_t buf[MULTIFD_HEADER_SIZE])
{
    memset(buf, 0, MULTIFD_HEADER_SIZE);
    stl_be_p(buf, MULTIFD_MAGIC);
    stl_be_p(buf + 4, MULTIFD_VERSION);
    stl_be_p(buf + PKT_FLAGS, p->flags);
    stl_be_p(buf + PKT_PAGES_ALLOC, p->pages_alloc);
    stl_be_p(buf + PKT_NORMAL, p->normal_pages);
    stl_be_p(buf + PKT_NEXT_SIZE, p->next_packet_size);
    stq_be_p(buf + PKT_NUM, p->packet_num);
    stl_be_p(buf + PKT_ZERO, p->zero_pages);
    memcpy(buf + PKT_IDSTR, p->idstr, strnlen(p->idstr, MULTIFD_IDSTR_SIZE - 1));
    for (uint32_t i = 0; i < p->normal_pages + p->zero_pages; i++) {
        stq_be_p(buf + PKT_OFFSETS + 8 * i, p->offsets[i]);
    }
}

bool multifd_decode_packet(const uint8_t buf[MULTIFD_HEADER_SIZE], MultiFDPacket *p,
                           GError **errp)
{
    uint32_t magic = ldl_be_p(buf), version = ldl_be_p(buf + 4);

    if (magic != MULTIFD_MAGIC) {
        error_setg(errp, "multifd: received packet magic %x expected %x", magic, MULTIFD_MAGIC);
        return false;
    }
    if (version != MULTIFD_VERSION) {
        error_setg(errp, "multifd: received packet version %u expected %u", version,
                   MULTIFD_VERSION);
        return false;
    }
    p->flags = ldl_be_p(buf + PKT_FLAGS);
    p->pages_alloc = ldl_be_p(buf + PKT_PAGES_ALLOC);
    p->normal_pages = ldl_be_p(buf + PKT_NORMAL);
    p->next_packet_size = ldl_be_p(buf + PKT_NEXT_SIZE);
    p->packet_num = ldq_be_p(buf + PKT_NUM);
    p->zero_pages = ldl_be_p(buf + PKT_ZERO);
    if (p->pages_alloc > MULTIFD_PACKET_PAGES) {
        error_setg(errp, "multifd: received packet with size %u and expected a size of %u",
                   p->pages_alloc, MULTIFD_PACKET_PAGES);
        return false;
    }
    if (p->normal_pages > p->pages_alloc) {
        error_setg(errp, "multifd: received packet with %u normal pages and expected "
                   "maximum pages are %u", p->normal_pages, p->pages_alloc);
        return false;
    }
    if (p->zero_pages > p->pages_alloc - p->normal_pages) {
        error_setg(errp, "multifd: received packet with %u zero pages and expected "
                   "maximum zero pages are %u", p->zero_pages,
                   p->pages_alloc - p->normal_pages);
        return false;
    }
    memcpy(p->idstr, buf + PKT_IDSTR, MULTIFD_IDSTR_SIZE);
    p->idstr[MULTIFD_IDSTR_SIZE - 1] = 0;
    for (uint32_t i = 0; i < p->normal_pages + p->zero_pages; i++) {
        p->offsets[i] = ldq_be_p(buf + PKT_OFFSETS + 8 * i);
    }
    return true;
}

const MultiFDMethod *multifd_method_find(const char *name)
{
    static const MultiFDMethod *const methods[] = { &multifd_zlib, &multifd_zstd };

    for (size_t i = 0; i < G_N_ELEMENTS(methods); i++) {
        if (!strcmp(methods[i]->name, name)) {
            return methods[i];
        }
    }
    return NULL;
}

MultiFDWire multifd_wire_for(unsigned major, unsigned minor, bool zero_page_multifd)
{
    unsigned v = major * 100 + minor;
    MultiFDWire w = {
        /* hw_compat_8_0 turns multifd-flush-after-each-section on */
        .sync_per_section = v <= 800,
        /* hw_compat_8_2 makes zero-page-detection legacy; 7.2 has no such field */
        .zero_in_packets = v >= 900 && zero_page_multifd,
    };
    return w;
}

bool multifd_machine_version(const char *machine, unsigned *major, unsigned *minor)
{
    const char *dash = strrchr(machine, '-');
    char tail;

    return dash && sscanf(dash + 1, "%u.%u%c", major, minor, &tail) == 2;
}

/* ------------------------------------------------------------------ */
/* sending                                                             */

/* One packet's worth of work handed to a channel. */
typedef struct SendJob {
    bool sync;
    char idstr[MULTIFD_IDSTR_SIZE];
    unsigned n;
    uint64_t offsets[MULTIFD_PACKET_PAGES];
    /* where each page's bytes are: guest memory, or the caller's buffers */
    const uint8_t *data[MULTIFD_PACKET_PAGES];
} SendJob;

typedef struct SendChannel {
    /* Immutable */
    MultiFDSend *s;
    unsigned id;
    IOChannel *ioc;               /* a reference; shut down from any thread */
    GThread *thread;              /* started by new, joined by free (migration thread) */
    /* Protected by s->lock */
    QemuCond wake;                /* busy or quit was set */
    bool busy;                    /* job belongs to the channel's thread until it clears busy */
    bool quit;
    SendJob job;                  /* written by the migration thread while !busy */
    /* The channel's thread only */
    void *method_state;
    uint8_t *hdr;                 /* MULTIFD_HEADER_SIZE */
    uint8_t *cbuf;                /* compressed payload, MULTIFD_MAX_COMPRESSED */
    MultiFDPacket pkt;
} SendChannel;

struct MultiFDSend {
    /* Immutable after multifd_send_new */
    MultiFDSendConfig cfg;
    SendChannel *ch;
    /* Protected by lock */
    QemuMutex lock;
    QemuCond idle;                /* a channel cleared busy, or failed */
    GError *err;                  /* the first error of any channel */
    /* Atomic */
    uint64_t packet_num;          /* shared by all channels, as in QEMU */
    /* The migration thread only */
    SendJob pending;
    unsigned next;                /* round-robin cursor */
};

static void send_set_error(MultiFDSend *s, GError *err)
{
    qemu_mutex_lock(&s->lock);
    if (!s->err) {
        s->err = err;
    } else {
        g_error_free(err);
    }
    qemu_cond_broadcast(&s->idle);
    qemu_mutex_unlock(&s->lock);
}

static bool send_job_pages(SendChannel *c, const SendJob *j, GError **errp)
{
    MultiFDSend *s = c->s;
    MultiFDPacket *p = &c->pkt;
    struct iovec iov[1 + MULTIFD_PACKET_PAGES];
    unsigned niov = 1, zeros = 0;

    memset(p, 0, sizeof(*p));
    p->flags = s->cfg.method ? s->cfg.method->flag : MULTIFD_FLAG_NOCOMP;
    p->pages_alloc = MULTIFD_PACKET_PAGES;
    g_strlcpy(p->idstr, j->idstr, sizeof(p->idstr));
    /* normal pages first, zero pages listed after them (10.2's order) */
    uint64_t zero_offs[MULTIFD_PACKET_PAGES];
    for (unsigned i = 0; i < j->n; i++) {
        const uint8_t *page = j->data[i];
        if (s->cfg.zero_in_packets && buffer_is_zero(page, MULTIFD_PAGE_SIZE)) {
            zero_offs[zeros++] = j->offsets[i];
            continue;
        }
        p->offsets[p->normal_pages++] = j->offsets[i];
        iov[niov++] = (struct iovec){ (void *)page, MULTIFD_PAGE_SIZE };
    }
    memcpy(p->offsets + p->normal_pages, zero_offs, zeros * sizeof(uint64_t));
    p->zero_pages = zeros;
    if (s->cfg.method && p->normal_pages) {
        size_t len;
        if (!s->cfg.method->compress(c->method_state, iov + 1, p->normal_pages, c->cbuf,
                                     MULTIFD_MAX_COMPRESSED, &len, errp)) {
            g_prefix_error(errp, "multifd %u: ", c->id);
            return false;
        }
        iov[1] = (struct iovec){ c->cbuf, len };
        niov = 2;
        p->next_packet_size = len;
    } else if (!s->cfg.method) {
        p->next_packet_size = p->normal_pages * MULTIFD_PAGE_SIZE;
    } else {
        niov = 1;
    }
    p->packet_num = __atomic_fetch_add(&s->packet_num, 1, __ATOMIC_RELAXED);
    multifd_encode_packet(p, c->hdr);
    iov[0] = (struct iovec){ c->hdr, MULTIFD_HEADER_SIZE };
    if (!io_channel_writev_all(c->ioc, iov, niov, errp)) {
        return false;
    }
    if (s->cfg.stats) {
        stat64_add(&s->cfg.stats->bytes, MULTIFD_HEADER_SIZE + p->next_packet_size);
        stat64_add(&s->cfg.stats->normal_pages, p->normal_pages);
        stat64_add(&s->cfg.stats->zero_pages, zeros);
    }
    return true;
}

static bool send_job_sync(SendChannel *c, GError **errp)
{
    MultiFDPacket *p = &c->pkt;

    memset(p, 0, sizeof(*p));
    p->flags = MULTIFD_FLAG_SYNC;
    p->packet_num = __atomic_fetch_add(&c->s->packet_num, 1, __ATOMIC_RELAXED);
    multifd_encode_packet(p, c->hdr);
    if (!io_channel_write_all(c->ioc, c->hdr, MULTIFD_HEADER_SIZE, errp)) {
        return false;
    }
    if (c->s->cfg.stats) {
        stat64_add(&c->s->cfg.stats->bytes, MULTIFD_HEADER_SIZE);
    }
    return true;
}

static gpointer send_thread(gpointer opaque)
{
    SendChannel *c = opaque;
    MultiFDSend *s = c->s;
    GError *err = NULL;
    uint8_t init[MULTIFD_INIT_SIZE];

    multifd_encode_init(init, s->cfg.uuid, c->id);
    bool ok = io_channel_write_all(c->ioc, init, sizeof(init), &err);
    while (ok) {
        qemu_mutex_lock(&s->lock);
        while (!c->busy && !c->quit) {
            qemu_cond_wait(&c->wake, &s->lock);
        }
        bool quit = !c->busy;
        qemu_mutex_unlock(&s->lock);
        if (quit) {
            break;
        }
        ok = c->job.sync ? send_job_sync(c, &err) : send_job_pages(c, &c->job, &err);
        qemu_mutex_lock(&s->lock);
        c->busy = false;
        qemu_cond_broadcast(&s->idle);
        qemu_mutex_unlock(&s->lock);
    }
    if (!ok) {
        g_prefix_error(&err, "multifd channel %u: ", c->id);
        send_set_error(s, err);
    }
    return NULL;
}

MultiFDSend *multifd_send_new(const MultiFDSendConfig *cfg, IOChannel *const *iocs,
                              GError **errp)
{
    MultiFDSend *s = g_new0(MultiFDSend, 1);
    s->cfg = *cfg;
    s->ch = g_new0(SendChannel, cfg->channels);
    qemu_mutex_init(&s->lock);
    qemu_cond_init(&s->idle);
    for (unsigned i = 0; i < cfg->channels; i++) {
        SendChannel *c = &s->ch[i];
        c->s = s;
        c->id = i;
        c->ioc = io_channel_ref(iocs[i]);
        qemu_cond_init(&c->wake);
        c->hdr = g_malloc(MULTIFD_HEADER_SIZE);
    }
    /* after every channel is set up: multifd_send_free() goes over all of them */
    for (unsigned i = 0; i < cfg->channels && cfg->method; i++) {
        SendChannel *c = &s->ch[i];
        c->cbuf = g_malloc(MULTIFD_MAX_COMPRESSED);
        if (fault_hit("multifd-method-new")) {
            error_setg(errp, "injected fault");
        } else {
            c->method_state = cfg->method->send_new(cfg->level, errp);
        }
        if (!c->method_state) {
            g_prefix_error(errp, "multifd %u: ", i);
            multifd_send_free(s);
            return NULL;
        }
    }
    for (unsigned i = 0; i < cfg->channels; i++) {
        char name[32];
        snprintf(name, sizeof(name), "mig/src/send_%u", i);
        s->ch[i].thread = g_thread_new(name, send_thread, &s->ch[i]);
    }
    return s;
}

static bool send_failed(MultiFDSend *s, GError **errp)
{
    if (s->err) {
        g_propagate_error(errp, g_error_copy(s->err));
        return true;
    }
    return false;
}

/* Hands the pending packet (or a sync) to channel c, which must be idle; s->lock held. */
static void send_hand(SendChannel *c, const SendJob *j)
{
    c->job = *j;
    c->busy = true;
    qemu_cond_signal(&c->wake);
}

static bool send_flush(MultiFDSend *s, GError **errp)
{
    if (!s->pending.n) {
        return true;
    }
    qemu_mutex_lock(&s->lock);
    for (;;) {
        if (send_failed(s, errp)) {
            qemu_mutex_unlock(&s->lock);
            return false;
        }
        for (unsigned k = 0; k < s->cfg.channels; k++) {
            SendChannel *c = &s->ch[(s->next + k) % s->cfg.channels];
            if (!c->busy) {
                send_hand(c, &s->pending);
                s->next = (c->id + 1) % s->cfg.channels;
                qemu_mutex_unlock(&s->lock);
                s->pending.n = 0;
                return true;
            }
        }
        qemu_cond_wait(&s->idle, &s->lock);
    }
}

bool multifd_send_queue_data(MultiFDSend *s, const char *idstr, const uint8_t *data,
                             uint64_t off, GError **errp)
{
    SendJob *j = &s->pending;

    if (j->n && strcmp(j->idstr, idstr) != 0 && !send_flush(s, errp)) {
        return false;
    }
    if (!j->n) {
        j->sync = false;
        g_strlcpy(j->idstr, idstr, sizeof(j->idstr));
    }
    j->data[j->n] = data;
    j->offsets[j->n++] = off;
    return j->n < MULTIFD_PACKET_PAGES || send_flush(s, errp);
}

bool multifd_send_queue_page(MultiFDSend *s, const char *idstr, uint8_t *host, uint64_t off,
                             GError **errp)
{
    return multifd_send_queue_data(s, idstr, host + off, off, errp);
}

/* Waits until no channel is busy; s->lock held.  False with the first error. */
static bool send_wait_idle(MultiFDSend *s, GError **errp)
{
    for (unsigned i = 0; i < s->cfg.channels; i++) {
        while (s->ch[i].busy && !s->err) {
            qemu_cond_wait(&s->idle, &s->lock);
        }
    }
    return !send_failed(s, errp);
}

bool multifd_send_drain(MultiFDSend *s, GError **errp)
{
    if (!send_flush(s, errp)) {
        return false;
    }
    qemu_mutex_lock(&s->lock);
    bool ok = send_wait_idle(s, errp);
    qemu_mutex_unlock(&s->lock);
    return ok;
}

bool multifd_send_sync(MultiFDSend *s, GError **errp)
{
    static const SendJob sync_job = { .sync = true };

    if (!send_flush(s, errp)) {
        return false;
    }
    qemu_mutex_lock(&s->lock);
    for (unsigned i = 0; i < s->cfg.channels; i++) {
        while (s->ch[i].busy && !s->err) {
            qemu_cond_wait(&s->idle, &s->lock);
        }
        if (send_failed(s, errp)) {
            qemu_mutex_unlock(&s->lock);
            return false;
        }
        send_hand(&s->ch[i], &sync_job);
    }
    bool ok = send_wait_idle(s, errp);
    qemu_mutex_unlock(&s->lock);
    return ok;
}

void multifd_send_shutdown(MultiFDSend *s)
{
    for (unsigned i = 0; i < s->cfg.channels; i++) {
        io_channel_shutdown(s->ch[i].ioc, NULL);
    }
}

void multifd_send_free(MultiFDSend *s)
{
    if (!s) {
        return;
    }
    qemu_mutex_lock(&s->lock);
    for (unsigned i = 0; i < s->cfg.channels; i++) {
        s->ch[i].quit = true;
        qemu_cond_signal(&s->ch[i].wake);
    }
    qemu_mutex_unlock(&s->lock);
    for (unsigned i = 0; i < s->cfg.channels; i++) {
        SendChannel *c = &s->ch[i];
        if (c->thread) {
            g_thread_join(c->thread);
        }
        /* every thread has ended before any channel closes */
    }
    for (unsigned i = 0; i < s->cfg.channels; i++) {
        SendChannel *c = &s->ch[i];
        if (c->method_state) {
            s->cfg.method->send_free(c->method_state);
        }
        io_channel_close(c->ioc, NULL);
        io_channel_unref(c->ioc);
        qemu_cond_destroy(&c->wake);
        g_free(c->hdr);
        g_free(c->cbuf);
    }
    if (s->err) {
        g_error_free(s->err);
    }
    qemu_cond_destroy(&s->idle);
    qemu_mutex_destroy(&s->lock);
    g_free(s->ch);
    g_free(s);
}

/* ------------------------------------------------------------------ */
/* receiving                                                           */

typedef struct RecvChannel {
    /* Immutable */
    MultiFDRecv *r;
    unsigned id;
    IOChannel *ioc;               /* a reference; shut down from any thread */
    GThread *thread;              /* started by new, joined by free (incoming thread) */
    /* The channel's thread only */
    void *method_state;
    uint8_t *hdr;
    uint8_t *cbuf;
    uint8_t *pagebuf;             /* cfg.pages: a packet's pages, MULTIFD_PACKET_PAGES of them */
    MultiFDPacket pkt;
} RecvChannel;

struct MultiFDRecv {
    /* Immutable after multifd_recv_new */
    MultiFDRecvConfig cfg;
    RecvChannel *ch;
    /* Protected by lock */
    QemuMutex lock;
    QemuCond cond;                /* a channel arrived at a SYNC or ended; a release */
    unsigned arrived;             /* channels waiting at their SYNC */
    uint64_t generation;          /* bumped by each release */
    unsigned ended;               /* threads that returned */
    bool shut;
    GError *err;                  /* the first error of any channel */
};

static bool recv_check_pages(RecvChannel *c, const MultiFDPacket *p, uint8_t **host,
                             GError **errp)
{
    MultiFDRecv *r = c->r;
    uint32_t want = r->cfg.method ? r->cfg.method->flag : MULTIFD_FLAG_NOCOMP;
    uint64_t used;

    if ((p->flags & MULTIFD_FLAG_METHOD) != want) {
        error_setg(errp, "flags received %x flags expected %x",
                   p->flags & MULTIFD_FLAG_METHOD, want);
        return false;
    }
    if (r->cfg.pages) {
        /* pages land in the channel's buffer, in packet order; the callback checks them */
        *host = NULL;
        return true;
    }
    if (!r->cfg.find_block(r->cfg.find_opaque, p->idstr, host, &used)) {
        error_setg(errp, "multifd: unknown ram block %s", p->idstr);
        return false;
    }
    for (uint32_t i = 0; i < p->normal_pages + p->zero_pages; i++) {
        uint64_t off = p->offsets[i];
        if (used < MULTIFD_PAGE_SIZE || off > used - MULTIFD_PAGE_SIZE ||
            off % MULTIFD_PAGE_SIZE) {
            error_setg(errp, "multifd: offset too long %" PRIu64 " (max %" PRIu64 ")", off,
                       used);
            return false;
        }
    }
    return true;
}

static bool recv_payload(RecvChannel *c, const MultiFDPacket *p, uint8_t *host, GError **errp)
{
    const MultiFDMethod *m = c->r->cfg.method;
    struct iovec iov[MULTIFD_PACKET_PAGES];

    for (uint32_t i = 0; i < p->normal_pages; i++) {
        uint8_t *dest = host ? host + p->offsets[i] : c->pagebuf + i * MULTIFD_PAGE_SIZE;
        iov[i] = (struct iovec){ dest, MULTIFD_PAGE_SIZE };
    }
    if (!m) {
        if (p->normal_pages && !io_channel_readv_all(c->ioc, iov, p->normal_pages, errp)) {
            return false;
        }
    } else if (p->normal_pages || p->next_packet_size) {
        if (p->next_packet_size > MULTIFD_MAX_COMPRESSED) {
            error_setg(errp, "multifd %u: packet of %u bytes is larger than %u", c->id,
                       p->next_packet_size, MULTIFD_MAX_COMPRESSED);
            return false;
        }
        if (!io_channel_read_all(c->ioc, c->cbuf, p->next_packet_size, errp) ||
            !m->decompress(c->method_state, c->cbuf, p->next_packet_size, iov,
                           p->normal_pages, errp)) {
            return false;
        }
    }
    if (!host) {
        return c->r->cfg.pages(c->r->cfg.pages_opaque, c->id, p, c->pagebuf, errp);
    }
    /* the destination's RAM is not known to be zero: write the zeros */
    for (uint32_t i = p->normal_pages; i < p->normal_pages + p->zero_pages; i++) {
        uint8_t *page = host + p->offsets[i];
        if (!buffer_is_zero(page, MULTIFD_PAGE_SIZE)) {
            memset(page, 0, MULTIFD_PAGE_SIZE);
        }
    }
    return true;
}

/* At a SYNC: wait for the main stream's marker.  False when shut down. */
static bool recv_wait_release(MultiFDRecv *r)
{
    qemu_mutex_lock(&r->lock);
    uint64_t gen = r->generation;
    r->arrived++;
    qemu_cond_broadcast(&r->cond);
    while (r->generation == gen && !r->shut) {
        qemu_cond_wait(&r->cond, &r->lock);
    }
    bool go_on = !r->shut;
    qemu_mutex_unlock(&r->lock);
    return go_on;
}

static gpointer recv_thread(gpointer opaque)
{
    RecvChannel *c = opaque;
    MultiFDRecv *r = c->r;
    GError *err = NULL;

    for (;;) {
        /* EOF at a packet boundary is the sender closing after the migration */
        int got = io_channel_read_all_eof(c->ioc, c->hdr, MULTIFD_HEADER_SIZE, &err);
        if (got <= 0) {
            break;
        }
        MultiFDPacket *p = &c->pkt;
        uint8_t *host = NULL;
        if (!multifd_decode_packet(c->hdr, p, &err)) {
            break;
        }
        if ((p->normal_pages || p->zero_pages) &&
            (!recv_check_pages(c, p, &host, &err) || !recv_payload(c, p, host, &err))) {
            break;
        }
        if ((p->flags & MULTIFD_FLAG_SYNC) && !recv_wait_release(r)) {
            break;
        }
    }
    bool first = false;
    qemu_mutex_lock(&r->lock);
    if (err && !r->shut) {
        g_prefix_error(&err, "multifd channel %u: ", c->id);
        if (!r->err) {
            r->err = g_steal_pointer(&err);
            first = true;
        }
    }
    r->ended++;
    qemu_cond_broadcast(&r->cond);
    qemu_mutex_unlock(&r->lock);
    g_clear_error(&err);
    if (first && r->cfg.on_error) {
        r->cfg.on_error(r->cfg.error_opaque);
    }
    return NULL;
}

MultiFDRecv *multifd_recv_new(const MultiFDRecvConfig *cfg, IOChannel *const *iocs,
                              GError **errp)
{
    MultiFDRecv *r = g_new0(MultiFDRecv, 1);
    r->cfg = *cfg;
    r->ch = g_new0(RecvChannel, cfg->channels);
    qemu_mutex_init(&r->lock);
    qemu_cond_init(&r->cond);
    for (unsigned i = 0; i < cfg->channels; i++) {
        RecvChannel *c = &r->ch[i];
        c->r = r;
        c->id = i;
        c->ioc = io_channel_ref(iocs[i]);
        c->hdr = g_malloc(MULTIFD_HEADER_SIZE);
        if (cfg->pages) {
            /* page-aligned, so that the tool may write it with O_DIRECT */
            c->pagebuf = qemu_memalign(MULTIFD_PAGE_SIZE,
                                       MULTIFD_PACKET_PAGES * MULTIFD_PAGE_SIZE);
        }
    }
    /* after every channel is set up: multifd_recv_free() goes over all of them */
    for (unsigned i = 0; i < cfg->channels && cfg->method; i++) {
        RecvChannel *c = &r->ch[i];
        c->cbuf = g_malloc(MULTIFD_MAX_COMPRESSED);
        if (fault_hit("multifd-method-new")) {
            error_setg(errp, "injected fault");
        } else {
            c->method_state = cfg->method->recv_new(errp);
        }
        if (!c->method_state) {
            g_prefix_error(errp, "multifd %u: ", i);
            multifd_recv_free(r);
            return NULL;
        }
    }
    for (unsigned i = 0; i < cfg->channels; i++) {
        char name[32];
        snprintf(name, sizeof(name), "mig/dst/recv_%u", i);
        r->ch[i].thread = g_thread_new(name, recv_thread, &r->ch[i]);
    }
    return r;
}

bool multifd_recv_sync(MultiFDRecv *r, GError **errp)
{
    qemu_mutex_lock(&r->lock);
    while (r->arrived + r->ended < r->cfg.channels && !r->err && !r->shut) {
        qemu_cond_wait(&r->cond, &r->lock);
    }
    bool ok = false;
    if (r->err) {
        g_propagate_error(errp, g_error_copy(r->err));
    } else if (r->shut) {
        error_setg(errp, "multifd: receiving was stopped");
    } else if (r->arrived < r->cfg.channels) {
        error_setg(errp, "multifd: a channel was closed before its sync packet");
    } else {
        r->arrived = 0;
        r->generation++;
        qemu_cond_broadcast(&r->cond);
        ok = true;
    }
    qemu_mutex_unlock(&r->lock);
    return ok;
}

void multifd_recv_shutdown(MultiFDRecv *r)
{
    qemu_mutex_lock(&r->lock);
    r->shut = true;
    qemu_cond_broadcast(&r->cond);
    qemu_mutex_unlock(&r->lock);
    for (unsigned i = 0; i < r->cfg.channels; i++) {
        io_channel_shutdown(r->ch[i].ioc, NULL);
    }
}

bool multifd_recv_error(MultiFDRecv *r, GError **errp)
{
    qemu_mutex_lock(&r->lock);
    bool failed = r->err != NULL;
    if (failed) {
        g_propagate_error(errp, g_error_copy(r->err));
    }
    qemu_mutex_unlock(&r->lock);
    return failed;
}

void multifd_recv_free(MultiFDRecv *r)
{
    if (!r) {
        return;
    }
    multifd_recv_shutdown(r);
    for (unsigned i = 0; i < r->cfg.channels; i++) {
        if (r->ch[i].thread) {
            g_thread_join(r->ch[i].thread);
        }
    }
    for (unsigned i = 0; i < r->cfg.channels; i++) {
        RecvChannel *c = &r->ch[i];
        if (c->method_state) {
            r->cfg.method->recv_free(c->method_state);
        }
        io_channel_close(c->ioc, NULL);
        io_channel_unref(c->ioc);
        g_free(c->hdr);
        g_free(c->cbuf);
        qemu_vfree(c->pagebuf);
    }
    if (r->err) {
        g_error_free(r->err);
    }
    qemu_cond_destroy(&r->cond);
    qemu_mutex_destroy(&r->lock);
    g_free(r->ch);
    g_free(r);
}

/* ------------------------------------------------------------------ */
/* accepting                                                           */

#define QEVM_MAGIC 0x5145564dU

/* An accepted connection whose peer closed its side (or reset it). */
static bool peer_closed(IOChannel *ioc)
{
    struct pollfd p = { .fd = io_channel_get_fd(ioc), .events = POLLRDHUP };
    return poll(&p, 1, 0) == 1 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR));
}

/*
 * A connection waits on l: 1; 0 when stop says so (looked at every 100
 * ms); -1 when the source closed one of the connections already accepted
 * (main, chans[0..channels)): it gave up, or had fewer channels and ended,
 * and the ones still awaited will never come.
 */
static int listener_wait(const IOListener *l, IOChannel *main_ioc, IOChannel **chans,
                         unsigned channels, MultiFDStop stop, void *opaque)
{
    while (!(stop && stop(opaque))) {
        if (io_listener_wait(l, 100)) {
            return 1;
        }
        if (main_ioc && peer_closed(main_ioc)) {
            return -1;
        }
        for (unsigned i = 0; i < channels; i++) {
            if (chans[i] && peer_closed(chans[i])) {
                return -1;
            }
        }
    }
    return 0;
}

static bool wait_readable(int fd, MultiFDStop stop, void *opaque)
{
    for (;;) {
        struct pollfd pfd = { .fd = fd, .events = POLLIN };
        if (stop && stop(opaque)) {
            return false;
        }
        if (poll(&pfd, 1, 100) > 0) {
            return true;
        }
    }
}

/*
 * Until fd has more than the have bytes it holds now (or its peer shut its
 * end: true, *hup set); false when stop says so.  A poll for POLLIN would
 * return at once while a few bytes wait, so a short peek waits for more
 * in 10 ms steps.
 */
static bool wait_more(int fd, ssize_t have, bool *hup, MultiFDStop stop, void *opaque)
{
    *hup = false;
    if (!have) {
        return wait_readable(fd, stop, opaque);
    }
    while (!(stop && stop(opaque))) {
        struct pollfd pfd = { .fd = fd, .events = POLLRDHUP };
        if (poll(&pfd, 1, 10) > 0) {
            *hup = true;
            return true;
        }
        uint8_t b[MULTIFD_INIT_SIZE];
        ssize_t n = recv(fd, b, sizeof(b), MSG_PEEK | MSG_DONTWAIT);
        if (n != have) {
            return true;
        }
    }
    return false;
}

/*
 * The first len bytes of an accepted connection, left in the socket when
 * peek (QEMU 10.2 tells the main connection from a multifd one by its
 * first 4), else read.  The wait stops with stop, and a peer that sends
 * part of them and then nothing never blocks the migration's end.
 */
static bool read_start(IOChannel *ioc, uint8_t *buf, size_t len, bool peek, MultiFDStop stop,
                       void *opaque, GError **errp)
{
    const char *what = peek ? "Failed to peek at channel" : "Failed to read from channel";
    int fd = io_channel_get_fd(ioc);
    ssize_t have = 0;

    for (;;) {
        bool hup;
        if (!wait_more(fd, have, &hup, stop, opaque)) {
            error_setg(errp, "%s: stopped", what);
            return false;
        }
        ssize_t n = recv(fd, buf, len, MSG_PEEK | MSG_DONTWAIT);
        if (n == (ssize_t)len) {
            break;
        }
        if (n < 0 && (errno == EINTR || errno == EAGAIN)) {
            continue;
        }
        if (n < 0) {
            error_setg_errno(errp, errno, "%s", what);
            return false;
        }
        if (n == 0 || (hup && n == have)) {
            if (!peek) {
                break;      /* the read below ends at the end of file, in QEMU's words */
            }
            error_setg(errp, "%s: end of file", what);
            return false;
        }
        have = n;
    }
    return peek || io_channel_read_all(ioc, buf, len, errp);
}

/* A multifd connection: its initial packet read and checked, stored by its id. */
static bool take_channel(IOChannel *ioc, unsigned channels, IOChannel **chans, MultiFDStop stop,
                         void *opaque, GError **errp)
{
    static const uint8_t no_uuid[16];
    uint8_t init[MULTIFD_INIT_SIZE];
    uint8_t id;

    if (!read_start(ioc, init, sizeof(init), false, stop, opaque, errp) ||
        !multifd_decode_init(init, no_uuid, channels, &id, errp)) {
        return false;
    }
    if (chans[id]) {
        error_setg(errp, "multifd: received id '%d' already setup'", id);
        return false;
    }
    chans[id] = io_channel_ref(ioc);
    return true;
}

IOChannel *multifd_accept_all(const IOListener *l, unsigned channels, IOChannel **chans,
                              MultiFDStop stop, void *opaque, GError **errp)
{
    g_autoptr(IOChannel) main_ioc = NULL;
    unsigned got = 0;

    while (!main_ioc || got < channels) {
        uint32_t magic;
        int r = listener_wait(l, main_ioc, chans, channels, stop, opaque);
        if (r < 0) {
            error_setg(errp, "multifd: the source closed its connections after %u of %u "
                       "multifd channels%s: is it set to multifd with multifd-channels %u?",
                       got, channels, main_ioc ? "" : " and before its main connection",
                       channels);
            return NULL;
        }
        if (r == 0) {
            error_setg(errp, "Failed to accept a migration connection: stopped");
            return NULL;
        }
        g_autoptr(IOChannel) ioc = io_listener_accept(l, errp);
        uint8_t b[4];
        if (!ioc || !read_start(ioc, b, sizeof(b), true, stop, opaque, errp)) {
            return NULL;
        }
        magic = ldl_be_p(b);
        if (magic == QEVM_MAGIC && !main_ioc) {
            main_ioc = g_steal_pointer(&ioc);
        } else if (magic == MULTIFD_MAGIC) {
            if (!take_channel(ioc, channels, chans, stop, opaque, errp)) {
                return NULL;
            }
            got++;
        } else if (magic == QEVM_MAGIC) {
            /* a second main connection: QEMU ignores it too (and says so) */
        } else {
            /* QEMU prints the 4 bytes as its (little-endian) host reads them */
            error_setg(errp, "unknown channel magic: %u", GUINT32_SWAP_LE_BE(magic));
            return NULL;
        }
    }
    return g_steal_pointer(&main_ioc);
}

struct MultiFDWatch {
    const IOListener *listener; /* immutable; the caller frees it after multifd_watch_end */
    unsigned channels;          /* immutable */
    IOChannel *main;            /* immutable (a reference); shut down from the watcher */
    GThread *thread;            /* the starting thread's */
    int stop;                   /* atomic: the load is over */
    GError *err;                /* the watcher's; read after the join */
};

static bool watch_stopped(void *opaque)
{
    MultiFDWatch *w = opaque;
    return __atomic_load_n(&w->stop, __ATOMIC_ACQUIRE);
}

static gpointer watch_thread(gpointer opaque)
{
    MultiFDWatch *w = opaque;

    while (!watch_stopped(w)) {
        if (!io_listener_wait(w->listener, 100)) {
            continue;
        }
        g_autoptr(IOChannel) ioc = io_listener_accept(w->listener, NULL);
        if (!ioc) {
            break;          /* shut down: the load is being stopped */
        }
        static const uint8_t no_uuid[16];
        uint8_t init[MULTIFD_INIT_SIZE], id;
        /* a peer that sends nothing keeps only the watch waiting, until the load ends */
        if (!read_start(ioc, init, 4, true, watch_stopped, w, NULL) ||
            ldl_be_p(init) != MULTIFD_MAGIC ||
            !read_start(ioc, init, sizeof(init), false, watch_stopped, w, NULL)) {
            continue;
        }
        if (multifd_decode_init(init, no_uuid, w->channels, &id, &w->err)) {
            error_setg(&w->err, "multifd: received id '%d' already setup'", id);
        }
        io_channel_shutdown(w->main, NULL);
        break;
    }
    return NULL;
}

MultiFDWatch *multifd_watch_start(const IOListener *l, unsigned channels, IOChannel *main)
{
    MultiFDWatch *w = g_new0(MultiFDWatch, 1);

    w->listener = l;
    w->channels = channels;
    w->main = io_channel_ref(main);
    w->thread = g_thread_new("multifd-watch", watch_thread, w);
    return w;
}

bool multifd_watch_end(MultiFDWatch *w, GError **errp)
{
    if (!w) {
        return false;
    }
    __atomic_store_n(&w->stop, 1, __ATOMIC_RELEASE);
    /*
     * A connection that went between the wait and the accept leaves the
     * accept waiting for the next one: the shutdown ends that wait too
     * (the listener is freed after this anyway).
     */
    io_listener_shutdown(w->listener);
    g_thread_join(w->thread);
    bool failed = w->err != NULL;
    if (failed) {
        g_propagate_error(errp, w->err);
    }
    io_channel_unref(w->main);
    g_free(w);
    return failed;
}
