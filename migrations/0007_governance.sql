CREATE TABLE `attendance` (
	`meeting_id` integer NOT NULL,
	`member_id` integer NOT NULL,
	`at` text DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')) NOT NULL,
	PRIMARY KEY(`meeting_id`, `member_id`),
	FOREIGN KEY (`meeting_id`) REFERENCES `meetings`(`id`) ON UPDATE no action ON DELETE cascade,
	FOREIGN KEY (`member_id`) REFERENCES `members`(`id`) ON UPDATE no action ON DELETE restrict
);
--> statement-breakpoint
CREATE TABLE `ballots` (
	`id` text PRIMARY KEY NOT NULL,
	`poll_id` integer NOT NULL,
	`college_id` integer,
	`choice` text NOT NULL,
	`open_voter_id` integer,
	FOREIGN KEY (`poll_id`) REFERENCES `polls`(`id`) ON UPDATE no action ON DELETE cascade
) WITHOUT ROWID;
--> statement-breakpoint
CREATE INDEX `ballots_poll_idx` ON `ballots` (`poll_id`,`college_id`);--> statement-breakpoint
CREATE TABLE `colleges` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`slug` text NOT NULL,
	`name_fr` text NOT NULL,
	`name_en` text NOT NULL,
	`weight_pct` real,
	`created_at` text DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')) NOT NULL
);
--> statement-breakpoint
CREATE UNIQUE INDEX `colleges_slug_unique` ON `colleges` (`slug`);--> statement-breakpoint
CREATE TABLE `dues_categories` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`slug` text NOT NULL,
	`name_fr` text NOT NULL,
	`name_en` text NOT NULL,
	`amount_cents` integer NOT NULL,
	`period` text NOT NULL,
	`period_days` integer,
	`created_at` text DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')) NOT NULL
);
--> statement-breakpoint
CREATE UNIQUE INDEX `dues_categories_slug_unique` ON `dues_categories` (`slug`);--> statement-breakpoint
CREATE TABLE `dues_holds` (
	`account_id` integer PRIMARY KEY NOT NULL,
	`member_id` integer NOT NULL,
	`since` text DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')) NOT NULL,
	FOREIGN KEY (`account_id`) REFERENCES `accounts`(`id`) ON UPDATE no action ON DELETE cascade,
	FOREIGN KEY (`member_id`) REFERENCES `members`(`id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE TABLE `dues_payments` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`member_id` integer NOT NULL,
	`category_id` integer NOT NULL,
	`amount_cents` integer NOT NULL,
	`method` text NOT NULL,
	`reference` text DEFAULT '' NOT NULL,
	`paid_on` text NOT NULL,
	`covers_from` text NOT NULL,
	`covers_until` text NOT NULL,
	`recorded_by` text NOT NULL,
	`created_at` text DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')) NOT NULL,
	FOREIGN KEY (`member_id`) REFERENCES `members`(`id`) ON UPDATE no action ON DELETE restrict,
	FOREIGN KEY (`category_id`) REFERENCES `dues_categories`(`id`) ON UPDATE no action ON DELETE restrict
);
--> statement-breakpoint
CREATE INDEX `dues_payments_member_idx` ON `dues_payments` (`member_id`,`covers_until`);--> statement-breakpoint
CREATE TABLE `dues_reminders` (
	`member_id` integer NOT NULL,
	`kind` text NOT NULL,
	`period_until` text NOT NULL,
	`channel` text NOT NULL,
	`sent_at` text,
	`error` text,
	`created_at` text DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')) NOT NULL,
	PRIMARY KEY(`member_id`, `kind`, `period_until`),
	FOREIGN KEY (`member_id`) REFERENCES `members`(`id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE TABLE `governance_journal` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`at` text DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')) NOT NULL,
	`actor` text NOT NULL,
	`kind` text NOT NULL,
	`member_id` integer,
	`poll_id` integer,
	`meeting_id` integer,
	`detail` text
);
--> statement-breakpoint
CREATE INDEX `governance_journal_member_idx` ON `governance_journal` (`member_id`);--> statement-breakpoint
CREATE INDEX `governance_journal_poll_idx` ON `governance_journal` (`poll_id`);--> statement-breakpoint
CREATE TABLE `governance_settings` (
	`id` integer PRIMARY KEY NOT NULL,
	`legal_form` text DEFAULT 'association' NOT NULL,
	`grace_days` integer DEFAULT 30 NOT NULL,
	`max_proxies` integer DEFAULT 1 NOT NULL,
	`remind_days` integer DEFAULT 30 NOT NULL,
	`block_stops` integer DEFAULT true NOT NULL,
	`updated_at` text DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')) NOT NULL
);
--> statement-breakpoint
CREATE TABLE `meetings` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`kind` text NOT NULL,
	`title` text NOT NULL,
	`starts_at` text NOT NULL,
	`agenda` text DEFAULT '' NOT NULL,
	`quorum_pct` integer DEFAULT 0 NOT NULL,
	`quorum_per_college` integer DEFAULT false NOT NULL,
	`created_at` text DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')) NOT NULL
);
--> statement-breakpoint
CREATE TABLE `members` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`kind` text NOT NULL,
	`name` text NOT NULL,
	`representative` text,
	`email` text,
	`user_id` integer,
	`college_id` integer,
	`category_id` integer,
	`status` text DEFAULT 'applicant' NOT NULL,
	`board` integer DEFAULT false NOT NULL,
	`applied_at` text DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')) NOT NULL,
	`admitted_at` text,
	`left_at` text,
	`exclusion_reason` text,
	`exclusion_decision` text,
	FOREIGN KEY (`user_id`) REFERENCES `users`(`id`) ON UPDATE no action ON DELETE set null,
	FOREIGN KEY (`college_id`) REFERENCES `colleges`(`id`) ON UPDATE no action ON DELETE restrict,
	FOREIGN KEY (`category_id`) REFERENCES `dues_categories`(`id`) ON UPDATE no action ON DELETE restrict
);
--> statement-breakpoint
CREATE UNIQUE INDEX `members_user_unique` ON `members` (`user_id`);--> statement-breakpoint
CREATE INDEX `members_college_idx` ON `members` (`college_id`);--> statement-breakpoint
CREATE TABLE `poll_voters` (
	`poll_id` integer NOT NULL,
	`member_id` integer NOT NULL,
	`cast_by` integer NOT NULL,
	PRIMARY KEY(`poll_id`, `member_id`),
	FOREIGN KEY (`poll_id`) REFERENCES `polls`(`id`) ON UPDATE no action ON DELETE cascade,
	FOREIGN KEY (`member_id`) REFERENCES `members`(`id`) ON UPDATE no action ON DELETE restrict
);
--> statement-breakpoint
CREATE TABLE `polls` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`meeting_id` integer,
	`kind` text NOT NULL,
	`title` text NOT NULL,
	`body` text DEFAULT '' NOT NULL,
	`options` text NOT NULL,
	`secret` integer NOT NULL,
	`electorate` text DEFAULT 'members' NOT NULL,
	`quorum_pct` integer DEFAULT 0 NOT NULL,
	`quorum_per_college` integer DEFAULT false NOT NULL,
	`opens_at` text NOT NULL,
	`closes_at` text NOT NULL,
	`action` text,
	`created_by` text NOT NULL,
	`created_at` text DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')) NOT NULL,
	`closed_at` text,
	`outcome` text,
	`result` text,
	`action_status` text DEFAULT 'none' NOT NULL,
	`action_error` text,
	`action_at` text,
	FOREIGN KEY (`meeting_id`) REFERENCES `meetings`(`id`) ON UPDATE no action ON DELETE restrict
);
--> statement-breakpoint
CREATE INDEX `polls_closes_idx` ON `polls` (`closed_at`,`closes_at`);--> statement-breakpoint
CREATE TABLE `proxies` (
	`meeting_id` integer NOT NULL,
	`giver_id` integer NOT NULL,
	`holder_id` integer NOT NULL,
	`at` text DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')) NOT NULL,
	PRIMARY KEY(`meeting_id`, `giver_id`),
	FOREIGN KEY (`meeting_id`) REFERENCES `meetings`(`id`) ON UPDATE no action ON DELETE cascade,
	FOREIGN KEY (`giver_id`) REFERENCES `members`(`id`) ON UPDATE no action ON DELETE restrict,
	FOREIGN KEY (`holder_id`) REFERENCES `members`(`id`) ON UPDATE no action ON DELETE restrict
);
--> statement-breakpoint
CREATE INDEX `proxies_holder_idx` ON `proxies` (`meeting_id`,`holder_id`);--> statement-breakpoint
CREATE TABLE `service_settings` (
	`service` text PRIMARY KEY NOT NULL,
	`open_for_signup` integer,
	`members_only` integer DEFAULT false NOT NULL,
	`default_quota_mb` integer,
	`updated_at` text DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')) NOT NULL
);
--> statement-breakpoint
INSERT INTO `governance_settings` (`id`) VALUES (1);
