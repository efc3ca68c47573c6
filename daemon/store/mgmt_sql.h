/* mgmt_sql.h — DB-thread work functions of mgmt.c (see mgmt_sql.c). */
#ifndef CUSTOS_MGMT_DB_H
#define CUSTOS_MGMT_DB_H

#include <stdint.h>
#include <jansson.h>
#include <mysql.h>

struct mgmt_job {
	json_t *ops;        /* array of operations, run in one transaction (may be empty) */
	json_t *tables;     /* result: {"groups": [[...]], "rules", "policies", "tasks",
	                       "selections", "thresholds"} (or task results rows) */
	uint64_t task_id;   /* mgmt_db_task_results */
	void *ctx;          /* the main thread's */
};

/* Runs j->ops, then reads every management table into j->tables. */
int mgmt_db_work(MYSQL *conn, void *arg, char *err, size_t errlen);
/* Reads the results of task j->task_id into j->tables (array of objects). */
int mgmt_db_task_results(MYSQL *conn, void *arg, char *err, size_t errlen);

#endif
