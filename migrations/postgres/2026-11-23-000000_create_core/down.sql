DROP TABLE users;
DROP TABLE project_secrets;
DROP TABLE projects;
