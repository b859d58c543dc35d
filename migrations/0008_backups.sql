CREATE TABLE `backup_repositories` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`name` text NOT NULL,
	`url` text NOT NULL,
	`every_hours` integer DEFAULT 24 NOT NULL,
	`keep_daily` integer DEFAULT 7 NOT NULL,
	`keep_weekly` integer DEFAULT 4 NOT NULL,
	`keep_monthly` integer DEFAULT 12 NOT NULL,
	`check_every_days` integer DEFAULT 7 NOT NULL,
	`network` text,
	`created_at` text DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')) NOT NULL
);
--> statement-breakpoint
CREATE UNIQUE INDEX `backup_repositories_name_unique` ON `backup_repositories` (`name`);--> statement-breakpoint
CREATE TABLE `backup_runs` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`repository_id` integer NOT NULL,
	`kind` text NOT NULL,
	`target` text NOT NULL,
	`status` text DEFAULT 'running' NOT NULL,
	`snapshot_id` text,
	`bytes_added` integer,
	`bytes_processed` integer,
	`files_processed` integer,
	`duration_ms` integer,
	`consistency` text,
	`error` text,
	`actor` text NOT NULL,
	`started_at` text DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')) NOT NULL,
	`finished_at` text,
	FOREIGN KEY (`repository_id`) REFERENCES `backup_repositories`(`id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE INDEX `backup_runs_repo_started` ON `backup_runs` (`repository_id`,`started_at`);