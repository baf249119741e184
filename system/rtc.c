/*
 * A real-time clock device, kept to exercise the corners of VMState:
 * fields added in later versions (v2, v3) with a v1 minimum, a
 * subsection sent only when its counter is non-zero, state the running
 * guest changes (one tick per ab pass), and a post_load that refuses an
 * impossible value.
 *
 *   v1: cmos_index, cmos[128], ticks
 *   v2: + base_time (host seconds at power-on)
 *   v3: + period_code (periodic interrupt rate select, 0..15)
 *   subsection "rtc/irq_reinject_on_ack_count" when that counter != 0
 */
#include <errno.h>
#include <time.h>

#include "migration/migration.h"
#include "system-internal.h"

#define RTC_CMOS_SIZE 128

/*
 * ticks and irq_reinject_on_ack_count: updated by vCPU threads
 * (atomic); everything is saved and loaded while the vCPUs are parked.
 */
typedef struct RTCState {
    uint8_t cmos_index;
    uint8_t cmos[RTC_CMOS_SIZE];
    uint64_t ticks;
    int64_t base_time;
    uint8_t period_code;
    uint32_t irq_reinject_on_ack_count;
} RTCState;

static RTCState rtc;

static bool rtc_irq_reinject_needed(void *opaque)
{
    RTCState *s = opaque;

    return s->irq_reinject_on_ack_count != 0;
}

static const VMStateDescription vmstate_rtc_irq_reinject = {
    .name = "rtc/irq_reinject_on_ack_count",
    .version_id = 1,
    .minimum_version_id = 1,
    .needed = rtc_irq_reinject_needed,
    .fields = (const VMStateField[]) {
        VMSTATE_UINT32(irq_reinject_on_ack_count, RTCState),
        VMSTATE_END_OF_LIST()
    },
};

static int rtc_post_load(void *opaque, int version_id)
{
    RTCState *s = opaque;

    if (s->cmos_index >= RTC_CMOS_SIZE || s->period_code > 15) {
        return -EINVAL;
    }
    if (version_id < 2) {
        s->base_time = time(NULL);   /* a v1 source did not send it */
    }
    return 0;
}

static const VMStateDescription vmstate_rtc = {
    .name = "rtc",
    .version_id = 3,
    .minimum_version_id = 1,
    .post_load = rtc_post_load,
    .fields = (const VMStateField[]) {
        VMSTATE_UINT8(cmos_index, RTCState),
        VMSTATE_BUFFER(cmos, RTCState),
        VMSTATE_UINT64(ticks, RTCState),
        VMSTATE_INT64_V(base_time, RTCState, 2),
        VMSTATE_UINT8_V(period_code, RTCState, 3),
        VMSTATE_END_OF_LIST()
    },
    .subsections = (const VMStateDescription * const []) {
        &vmstate_rtc_irq_reinject,
        NULL
    },
};

/* Power-on CMOS: a few registers set as a PC's RTC has them. */
void rtc_init(Migration *mig)
{
    rtc.cmos_index = 0;
    rtc.cmos[0x0a] = 0x26;       /* divider on, 1024 Hz rate select */
    rtc.cmos[0x0b] = 0x02;       /* 24-hour mode */
    rtc.cmos[0x0d] = 0x80;       /* valid RAM and time */
    rtc.period_code = 6;
    rtc.base_time = time(NULL);
    migration_register_vmstate(mig, "rtc", 0, &vmstate_rtc, &rtc);
}

void rtc_tick(void)
{
    __atomic_fetch_add(&rtc.ticks, 1, __ATOMIC_RELAXED);
}

void rtc_ack_irq(void)
{
    __atomic_fetch_add(&rtc.irq_reinject_on_ack_count, 1, __ATOMIC_RELAXED);
}
